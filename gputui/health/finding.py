"""A finding (a condition seen now, not yet an alert) and what rules are given to judge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gputui.config import Thresholds
from gputui.frames import XidEvent
from gputui.health.model import Severity


@dataclass(frozen=True)
class Finding:
    """One condition on one GPU (``gpu`` set) or host, as seen now."""

    rule: str
    severity: Severity
    gpu: int | None
    title: str
    advice: str
    evidence: dict[str, str] = field(default_factory=dict)
    extra: str = ""  # tells apart findings of one rule on one GPU (the XID number, "corrected")
    since: float | None = None  # when the data says it began (an event's time, a process's start)
    band: bool = False  # only within the hysteresis band: keeps an alert on, never starts one
    immediate: bool = False  # an event or a dead GPU: no hold time
    behind: tuple[str, ...] = ()  # the hosts it speaks for (a jump host's: those behind it)

    def key(self, host: str) -> str:
        where = "" if self.gpu is None else f":{self.gpu}"
        if self.extra:
            where = f"{where or ':*'}:{self.extra}"
        return f"{self.rule}:{host}{where}"


@dataclass(frozen=True)
class Context:
    thresholds: Thresholds
    now: float  # wall clock, epoch seconds
    mono_now: float  # the store's clock, for host state and data age
    xids: Sequence[XidEvent] = ()  # this host's XIDs within the window
    last_xid: Mapping[int | None, XidEvent] = field(default_factory=dict)  # per GPU, the newest XID ever seen
    climbs: Mapping[tuple[int, str], int] = field(default_factory=dict)  # (gpu, counter) -> rise within the window
    jobs: Mapping[int, str] = field(default_factory=dict)  # GPU -> the Slurm job holding it ("job 12 train (alice)")
