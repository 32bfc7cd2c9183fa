"""Targets as operators type them: ``gpu-07``, ``gpu-07:0,1``,
``gpu-07:GPU-5d1c...``, ``gpu-07:pid=1234``.

Parsing is strict and names the bad part: a typo must be an error, never a
wider target than meant.
"""

from __future__ import annotations

import re

from gputui.actions.model import Target
from gputui.protocol import NODE_ACTIONS

UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]+$")


class TargetError(ValueError):
    """A target the operator typed cannot be used; the message says why."""


def parse_target(text: str, known_hosts: set[str]) -> Target:
    host, sep, rest = text.partition(":")
    if not host:
        raise TargetError(f"{text!r}: no host before ':'")
    if host not in known_hosts:
        raise TargetError(f"{text!r}: host {host!r} is not in the config")
    if not sep:
        return Target(host)
    if rest.startswith("pid="):
        pid = rest[4:]
        if not pid.isdigit() or int(pid) < 1:
            raise TargetError(f"{text!r}: pid must be a positive number, got {pid!r}")
        return Target(host, pid=int(pid))
    gpus: list[str] = []
    for part in rest.split(","):
        part = part.strip()
        if not (part.isdigit() or UUID.match(part)):
            raise TargetError(f"{text!r}: {part!r} is neither a GPU index nor a GPU UUID (GPU-...)")
        if part in gpus:
            raise TargetError(f"{text!r}: GPU {part} is named twice")
        gpus.append(part)
    return Target(host, tuple(gpus))


def parse_targets(kind: str, texts: list[str], known_hosts: set[str]) -> list[Target]:
    """Targets for one action, checked against what the action takes."""
    if not texts:
        raise TargetError("no target given (e.g. gpu-07:0,1)")
    targets = [parse_target(t, known_hosts) for t in texts]
    for target in targets:
        label = target.label()
        if kind in NODE_ACTIONS and (target.gpus or target.pid is not None):
            raise TargetError(f"{label}: {kind} takes a whole host (just the host's name)")
        if kind == "kill" and target.pid is None:
            raise TargetError(f"{label}: kill takes a process, as HOST:pid=PID")
        if kind not in NODE_ACTIONS and kind != "kill" and not target.gpus:
            raise TargetError(f"{label}: {kind} takes GPUs, as HOST:0,1 or HOST:GPU-uuid")
    hosts = [t.host for t in targets]
    dup = next((h for h in hosts if hosts.count(h) > 1), None)
    if dup is not None and kind != "kill":
        raise TargetError(f"host {dup!r} is named twice: list its GPUs once, as {dup}:0,1")
    return targets
