"""An action as data: what, where, who and why, before anything runs.

The same objects come from the CLI's arguments and from the UI's selection,
so both pass through one guard. What the hosts answer is parsed into
``HostAnswer`` at the boundary; a malformed answer is a failure of that
host, never of the guard.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Actions whose confirmation is typed, not a keypress: they stop work.
TYPED_CONFIRM = frozenset({"kill", "drain", "drain-node"})


@dataclass(frozen=True)
class Target:
    """One host and what on it: GPUs (indices or UUIDs), a pid, or the node."""

    host: str
    gpus: tuple[str, ...] = ()
    pid: int | None = None

    def label(self) -> str:
        if self.pid is not None:
            return f"{self.host}:pid={self.pid}"
        return f"{self.host}:{','.join(self.gpus)}" if self.gpus else self.host


@dataclass(frozen=True)
class Operator:
    """Who acts: the local user, this machine, and the SSH keys they hold."""

    user: str
    host: str
    keys: tuple[str, ...] = ()

    @classmethod
    def local(cls, keys: tuple[str, ...] = ()) -> Operator:
        return cls(getpass.getuser(), socket.gethostname(), keys)

    def label(self) -> str:
        return f"{self.user}@{self.host}"

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.user, "host": self.host, "keys": list(self.keys)}


@dataclass
class ActionRequest:
    kind: str
    targets: list[Target]
    reason: str
    ticket: str | None = None
    holder: str | None = None  # reserve: who the GPUs are held for
    until: float | None = None  # reserve: epoch seconds
    kill_after: bool = False  # kill: SIGKILL when SIGTERM is not honoured
    term_wait_s: float | None = None
    force: bool = False  # past the blast-radius limit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(t.host for t in self.targets))

    def gpu_count(self) -> int:
        return sum(len(t.gpus) for t in self.targets)

    def summary(self) -> str:
        return f"{self.kind} {' '.join(t.label() for t in self.targets)}"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GpuState(_Answer):
    index: int
    uuid: str | None = None
    state: str = "free"
    holder: str | None = None


class Affected(_Answer):
    gpu: int | None = None
    uuid: str | None = None
    pid: int
    pid_start: int | None = None
    user: str | None = None
    command: str | None = None
    job: str | None = None


class HostAnswer(_Answer):
    """One host's answer to a preview or an apply (docs/actions.md)."""

    ok: bool
    phase: str = "preview"
    host: str | None = None
    error: str | None = None
    conflict: bool = False
    ledger_version: int | None = None
    state_dir: str | None = None
    gpus: list[GpuState] = Field(default_factory=list)
    commands: list[list[str]] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    affected: list[Affected] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    done: list[str] = Field(default_factory=list)

    @classmethod
    def failure(cls, message: str, phase: str) -> HostAnswer:
        return cls(ok=False, phase=phase, error=message)
