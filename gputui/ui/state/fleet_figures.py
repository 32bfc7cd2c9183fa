"""The overview's fleet figures (hosts per state, GPUs busy and lost), worked out once per change.

The overview refreshes twice a second, and at thousands of hosts counting every
host and every GPU each time was most of a refresh, often for nothing: a fleet
that sent nothing since has the same figures. They change only when the store
does (its ``version`` moves on every change) or when a live host turns stale,
the one change that time makes alone; the earliest moment any live host can
turn stale is known from the last count. Between those, the figures are read,
not counted. When the store did change, a host's GPU counts are worked out
again only for a host with a new sample (or hello), so a refresh walks the
hosts but not every GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gputui.fleet.allocation import in_use
from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.frames import Hello


@dataclass(frozen=True)
class Figures:
    """One count of the fleet; a new object whenever anything in it may differ (readers compare by identity)."""

    states: dict[HostState, int]
    gpus: int
    busy: int
    lost: int
    widest: int  # the most GPUs one host has (or says it has, before its first sample): the overview's columns


@dataclass(frozen=True)
class _HostGpus:
    """One host's GPU counts, and which hello and sample they were worked out from."""

    sample_no: int  # the host's sample counted (HostRecord.sample_no)
    hello: Hello | None
    gpus: int
    busy: int
    lost: int
    widest: int


class FleetFigures:
    """``current()``: the store's figures now, counted again only when they may have changed."""

    def __init__(self, store: FleetStore) -> None:
        self.store = store
        self.counted: Figures | None = None
        self.version = -1  # the store's version when counted
        self.valid_from = math.inf  # the store's clock when counted: a replay's clock can go back
        self.valid_until = -math.inf  # when the first live host may turn stale
        self.per_host: dict[str, _HostGpus] = {}
        self.generation = 0  # counts so far: what was worked out from the figures' hosts keys on it

    def current(self) -> Figures:
        """The figures now: the last count while the store's version and the clock (at or after that
        count, before the first live host's stale deadline) say it still holds, else a new one."""
        now = self.store.clock()
        if self.counted is None or self.version != self.store.version or not self.valid_from <= now < self.valid_until:
            self.counted = self._count(now)
            self.version, self.valid_from = self.store.version, now
            self.generation += 1
        return self.counted

    def _count(self, now: float) -> Figures:
        """Walk the hosts once: their states, the earliest stale deadline, their GPUs' counts."""
        states = dict.fromkeys(HostState, 0)
        gpus = busy = lost = widest = 0
        until = math.inf
        for record in self.store.hosts.values():
            state = record.state(now)
            states[state] += 1
            if state is HostState.LIVE and record.last_frame_at is not None:
                until = min(until, record.last_frame_at + record.stale_after * record.interval_s)
            host = self._host_gpus(record)
            gpus, busy, lost = gpus + host.gpus, busy + host.busy, lost + host.lost
            widest = max(widest, host.widest)
        self.valid_until = until
        return Figures(states, gpus, busy, lost, widest)

    def _host_gpus(self, record: HostRecord) -> _HostGpus:
        known = self.per_host.get(record.name)
        if known is not None and known.sample_no == record.sample_no and known.hello is record.hello:
            return known
        source = record.hello.source if record.hello else None
        gpus = record.sample.gpus if record.sample is not None else []
        said = len(record.hello.gpus) if record.hello else 0
        counted = _HostGpus(
            record.sample_no,
            record.hello,
            len(gpus),
            sum(1 for g in gpus if in_use(g, source)),
            sum(1 for g in gpus if g.lost),
            len(gpus) or said,
        )
        self.per_host[record.name] = counted
        return counted
