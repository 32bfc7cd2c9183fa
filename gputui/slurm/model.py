"""What the dashboard knows of a Slurm cluster at one moment: which job runs on
which GPU, each node's state and reason, and the reservations on each node.

Plain frozen dataclasses, built by :mod:`gputui.slurm.parse` from what
``squeue``, ``sinfo`` and ``scontrol`` answer and read by the screens, the
snapshot and the health rules alike. Hosts and Slurm nodes are joined by the
config's ``slurm_node`` (the host's own name when not given), so a view is
always asked by host name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gputui.render import age_words


@dataclass(frozen=True)
class SlurmJob:
    """One running job, and the GPUs Slurm gave it on each node (GRES IDX)."""

    id: str
    name: str
    user: str
    partition: str
    state: str
    start_time: float | None  # epoch seconds
    time_limit_s: float | None  # None: no limit
    gpus: dict[str, tuple[int, ...]] = field(default_factory=dict)  # node -> GPU indices

    def elapsed_s(self, now: float) -> float | None:
        return None if self.start_time is None else max(0.0, now - self.start_time)

    def label(self) -> str:
        """``job 1234 train (alice)``: what a cell has room for."""
        return f"job {self.id} {self.name} ({self.user})"

    def words(self, now: float) -> str:
        """The job with its partition, elapsed time and limit, for a detail line."""
        elapsed = self.elapsed_s(now)
        ran = age_words(elapsed) if elapsed is not None else "?"
        limit = age_words(self.time_limit_s) if self.time_limit_s is not None else "no limit"
        return f"{self.label()}, partition {self.partition}, {ran} of {limit}"

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "partition": self.partition,
            "state": self.state,
            "elapsed_s": self.elapsed_s(now),
            "time_limit_s": self.time_limit_s,
        }


@dataclass(frozen=True)
class SlurmNode:
    """A node as sinfo shows it: ``state`` is sinfo's word (idle, mixed, allocated,
    drained, draining, down, ...), ``flags`` Slurm's own (DRAIN, NOT_RESPONDING...)."""

    name: str
    state: str
    flags: tuple[str, ...] = ()
    reason: str | None = None
    reason_by: str | None = None
    reason_at: float | None = None  # epoch seconds

    def words(self) -> str:
        """``drained: fan noise (root, 2026-12-05 02:41)``."""
        text = self.state
        if self.reason:
            who = ", ".join(w for w in (self.reason_by, _when(self.reason_at)) if w)
            text += f": {self.reason}" + (f" ({who})" if who else "")
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "flags": list(self.flags),
            "reason": self.reason,
            "reason_by": self.reason_by,
            "reason_at": self.reason_at,
        }


@dataclass(frozen=True)
class SlurmReservation:
    """A reservation as ``scontrol show reservation -o`` prints it (times as Slurm wrote them)."""

    name: str
    nodes: str
    users: str
    start: str
    end: str
    flags: str
    state: str
    node_names: tuple[str, ...] = field(default=(), compare=False)  # ``nodes`` expanded

    def words(self) -> str:
        return f"reservation {self.name} for {self.users or '?'} until {self.end.replace('T', ' ')} ({self.state.lower()})"

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "users": self.users, "start": self.start, "end": self.end,
                "flags": self.flags, "state": self.state}  # fmt: skip


@dataclass(frozen=True)
class SlurmView:
    """One reading of the cluster. ``error``: why the last reading failed (the
    previous parts are kept, marked by ``read_at`` as how old they are)."""

    jobs: tuple[SlurmJob, ...] = ()
    nodes: dict[str, SlurmNode] = field(default_factory=dict)
    reservations: tuple[SlurmReservation, ...] = ()
    node_of: dict[str, str] = field(default_factory=dict)  # host name -> Slurm node name
    read_at: float | None = None  # epoch seconds of the last good reading
    error: str | None = None
    by_gpu: dict[tuple[str, int], SlurmJob] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for job in self.jobs:
            for node, indices in job.gpus.items():
                for index in indices:
                    self.by_gpu.setdefault((node, index), job)

    def node_name(self, host: str) -> str:
        return self.node_of.get(host, host)

    def node(self, host: str) -> SlurmNode | None:
        return self.nodes.get(self.node_name(host))

    def job_on(self, host: str, gpu: int) -> SlurmJob | None:
        return self.by_gpu.get((self.node_name(host), gpu))

    def jobs_on(self, host: str) -> list[SlurmJob]:
        node = self.node_name(host)
        return [job for job in self.jobs if node in job.gpus]

    def reservations_on(self, host: str) -> list[SlurmReservation]:
        node = self.node_name(host)
        return [r for r in self.reservations if node in r.node_names]


def _when(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def slurm_json(view: SlurmView | None, host: str) -> dict[str, object] | None:
    """The host's ``slurm`` object in ``snapshot`` and ``check`` JSON (docs/snapshot.md):
    its node as sinfo has it and its reservations; None where Slurm is not read."""
    if view is None:
        return None
    node = view.node(host)
    return {
        "node": node.as_dict() if node is not None else None,
        "reservations": [r.as_dict() for r in view.reservations_on(host)],
        "read_at": view.read_at,
        "error": view.error,
    }
