"""An alert as every consumer sees it: the triage screen, ``gputui check``,
the incident report and replay.

The engine (``gputui.health.engine``) makes these from the fleet store; the
consumers only read them. ``key`` names one problem on one GPU (or host)
across evaluations, so damping, acknowledgement and silencing follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Severity(IntEnum):
    """Ordered: a higher value is worse (sorting puts critical first with reverse=True)."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Alert:
    key: str  # "<rule>:<host>[:<gpu index>]" (plus ":<xid>" for XID alerts): stable across evaluations
    rule: str  # e.g. "jump", "xid", "thermal", "ecc", "remap", "lost", "idle-holding", "stale", "throttle"
    severity: Severity
    host: str
    gpu: int | None  # None: about the whole host
    title: str  # one line: "XID 79 on GPU 3: fallen off the bus"
    advice: str  # what to do, in an operator's words
    since: float  # wall-clock time the condition was first seen (not when the alert became active)
    evidence: dict[str, str] = field(default_factory=dict)  # the values behind it, already formatted
    behind: tuple[str, ...] = ()  # a jump host's alert: the hosts behind it, whose own "down" alerts it replaces

    @property
    def where(self) -> str:
        return self.host if self.gpu is None else f"{self.host}:{self.gpu}"
