"""Reading what Slurm's commands print, for :mod:`gputui.slurm.model`.

``squeue --json`` and ``sinfo --json`` are read rather than a ``--format``
table because job names and reasons may hold any character, the separator
included. Their schema moves between Slurm releases (22.05 gives numbers and
states as plain values, 23.x as ``{"set", "infinite", "number"}`` objects and
lists): both are accepted. Reservations come from ``scontrol show reservation
-o`` (22.05's scontrol has no JSON), one line each.

A job's GPUs are Slurm's own GRES indices (``gres_detail``: ``gpu:2(IDX:0-1)``,
the same words ``scontrol show job -d`` prints), paired with the node they are
on: never guessed from process lists.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gputui.slurm.model import SlurmJob, SlurmNode, SlurmReservation


class SlurmParseError(ValueError):
    """Slurm answered something this cannot read; the message says what."""


_IDX = re.compile(r"\(IDX:([^)]*)\)")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_FIELD = re.compile(r"(?:^|\s)([A-Za-z]+)=")


def squeue_jobs(text: str) -> list[SlurmJob]:
    """Running jobs from ``squeue --json`` (pending ones hold no GPU yet)."""
    data = _load(text, "squeue --json")
    jobs: list[SlurmJob] = []
    for raw in _list(data, "jobs", "squeue --json"):
        if not isinstance(raw, dict):
            continue
        state = _state(raw.get("job_state"))
        if "RUNNING" not in state:
            continue
        limit = _number(raw.get("time_limit"))  # minutes
        jobs.append(
            SlurmJob(
                id=_job_id(raw.get("job_id")),
                name=str(raw.get("name") or ""),
                user=str(raw.get("user_name") or raw.get("user_id") or "?"),
                partition=str(raw.get("partition") or ""),
                state="+".join(state),
                start_time=_number(raw.get("start_time")) or None,
                time_limit_s=None if limit is None else limit * 60.0,
                gpus=_job_gpus(raw),
            )
        )
    return jobs


def _job_gpus(raw: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Node -> GPU indices: ``gres_detail`` has one entry per allocated node, in
    the order of ``job_resources.allocated_nodes`` (which names each)."""
    details = raw.get("gres_detail") or []
    resources = raw.get("job_resources") or {}
    nodes: list[Any] = [n.get("nodename") for n in resources.get("allocated_nodes") or [] if isinstance(n, dict)]
    if not nodes:
        nodes = expand_hostlist(str(raw.get("nodes") or ""))
    out: dict[str, tuple[int, ...]] = {}
    for node, detail in zip(nodes, details, strict=False):
        if isinstance(node, str) and isinstance(detail, str):
            indices = gres_indices(detail)
            if indices:
                out[node] = indices
    return out


def gres_indices(detail: str) -> tuple[int, ...]:
    """``gpu:a100:2(IDX:0,2-3),nic:1(IDX:0)`` -> (0, 2, 3): the GPU entries' indices only."""
    found: list[int] = []
    for part in re.split(r",(?=[A-Za-z])", detail):
        if not part.startswith("gpu"):
            continue
        m = _IDX.search(part)
        if m is None:
            continue
        for piece in m.group(1).split(","):
            r = _RANGE.match(piece.strip())
            if r is None:
                continue  # "N/A" when the GRES has no files
            lo, hi = int(r.group(1)), int(r.group(2) or r.group(1))
            found.extend(range(lo, hi + 1))
    return tuple(sorted(set(found)))


def sinfo_nodes(text: str) -> dict[str, SlurmNode]:
    """Nodes from ``sinfo --json``, with sinfo's own word for the state."""
    data = _load(text, "sinfo --json")
    nodes: dict[str, SlurmNode] = {}
    for raw in _list(data, "nodes", "sinfo --json"):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            continue
        parts = _state(raw.get("state")) + [str(f).upper() for f in raw.get("state_flags") or []]
        base, flags = (parts[0] if parts else "UNKNOWN"), tuple(dict.fromkeys(parts[1:]))
        nodes[raw["name"]] = SlurmNode(
            name=raw["name"],
            state=state_word(base, flags),
            flags=flags,
            reason=str(raw.get("reason") or "") or None,
            reason_by=str(raw.get("reason_set_by_user") or "") or None if raw.get("reason") else None,
            reason_at=(_number(raw.get("reason_changed_at")) or None) if raw.get("reason") else None,
        )
    return nodes


def state_word(base: str, flags: tuple[str, ...]) -> str:
    """sinfo's ``%T``: IDLE+DRAIN is "drained", MIXED/ALLOCATED+DRAIN "draining",
    DOWN "down"; "(not responding)" where Slurm would print a ``*``."""
    base = base.upper()
    if "DRAIN" in flags:
        word = "draining" if base in ("MIXED", "ALLOCATED", "COMPLETING") else "drained"
    elif "MAINTENANCE" in flags or "MAINT" in flags:
        word = "maint"
    elif "RESERVED" in flags:
        word = "reserved"
    else:
        word = base.lower()
    if base != "DOWN" and "NOT_RESPONDING" in flags:
        word += " (not responding)"
    return word


def reservations(text: str) -> list[SlurmReservation]:
    """``scontrol show reservation -o``: one ``Key=value ...`` line each (values
    hold no spaces except in fields this does not read); Slurm's ``(null)`` is ""."""
    out: list[SlurmReservation] = []
    for line in text.splitlines():
        if not line.startswith("ReservationName="):
            continue
        fields = {key: "" if value == "(null)" else value for key, value in _fields(line).items()}
        nodes = fields.get("Nodes", "")
        out.append(
            SlurmReservation(
                name=fields.get("ReservationName", ""),
                nodes=nodes,
                users=fields.get("Users", ""),
                start=fields.get("StartTime", ""),
                end=fields.get("EndTime", ""),
                flags=fields.get("Flags", ""),
                state=fields.get("State", ""),
                node_names=tuple(expand_hostlist(nodes)),
            )
        )
    return out


def _fields(line: str) -> dict[str, str]:
    keys = list(_FIELD.finditer(line))
    out: dict[str, str] = {}
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(line)
        out[m.group(1)] = line[m.end() : end].strip()
    return out


def expand_hostlist(text: str) -> list[str]:
    """Slurm's hostlist: ``gpu-[01-03,07],login1`` -> gpu-01, gpu-02, gpu-03, gpu-07, login1."""
    names: list[str] = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\][^,\[]*)*", text):
        names.extend(_expand_one(item.strip()))
    return [n for n in names if n]


def _expand_one(item: str) -> list[str]:
    m = re.match(r"^([^\[]*)\[([^\]]*)\](.*)$", item)
    if m is None:
        return [item]
    prefix, ranges, rest = m.groups()
    out: list[str] = []
    for piece in ranges.split(","):
        lo, _, hi = piece.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return [item]
        width = len(lo)
        for n in range(int(lo), int(hi or lo) + 1):
            out.extend(f"{prefix}{n:0{width}d}{tail}" for tail in _expand_one(rest))
    return out


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SlurmParseError(f"{what} did not answer JSON ({exc}): {text.strip()[:120]!r}") from None


def _list(data: Any, key: str, what: str) -> list[Any]:
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise SlurmParseError(f"{what}: no {key!r} list in its answer")
    return items


def _state(value: Any) -> list[str]:
    """22.05: "RUNNING" or "mixed"; 23.x: ["RUNNING"] or ["MIXED", "DRAIN"]."""
    if isinstance(value, str):
        return [value.upper()]
    if isinstance(value, list):
        return [str(v).upper() for v in value]
    return []


def _number(value: Any) -> float | None:
    """22.05: 42 or null; 23.x: {"set": true, "infinite": false, "number": 42}."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        return _number(value.get("number"))
    return None


def _job_id(value: Any) -> str:
    number = _number(value)
    return str(int(number)) if number is not None else str(value)
