"""The overview's fleet figures (hosts per state, GPUs busy and lost), kept up to date per host.

The overview refreshes once a second, and at thousands of hosts counting every
host and every GPU each time was most of a refresh. Each host's part of the
figures is kept instead, and a refresh works out again only the parts of the
hosts the store says changed since (``FleetStore.changed_since``: new hosts
too) and of the
live hosts whose stale deadline has passed: the one change time makes alone,
found from a heap of deadlines, not by asking every host. The whole fleet is
counted again only when the store changed beyond single hosts (hosts cleared,
Slurm) or its clock went back (a replay).

The overview's figures also ``follow`` the store: a host's part is worked out
again as its frame is applied, in that frame's turn of the event loop. A
refresh then has none of it left to do: at 2,048 hosts it had recounted about
900 hosts in one turn, some 15 ms of a refresh that held the loop for 40.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass

from gputui.fleet.allocation import NO_PROCESS_LIST, in_use_count
from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.frame_untracking import untracker
from gputui.frames import Hello


@dataclass(frozen=True)
class Figures:
    """One count of the fleet; a new object whenever anything in it may differ (readers compare by identity)."""

    states: dict[HostState, int]
    gpus: int
    busy: int
    lost: int
    widest: int  # the most GPUs one host has (or says it has, before its first sample): the overview's columns


@dataclass(slots=True)
class _HostPart:
    """One host's part of the figures, and which hello and sample it was worked out from.

    A frame that leaves the host's figures as they were (most frames) moves the part's sample and
    deadline in place; one that changes them makes a new part. Each is taken out of the
    collector's walk as it is made (``FleetFigures._recount``): when one was made for each host's
    frame, at 4,096 hosts thousands of them lived long enough to be walked with the middle
    generation, and a part refers only to numbers, a state and a hello, none of which can refer
    back to it."""

    sample_no: int  # the host's sample counted (HostRecord.sample_no)
    hello: Hello | None
    state: HostState
    deadline: float  # when it turns stale if nothing more comes (live only; else infinity)
    gpus: int
    busy: int
    lost: int
    widest: int


class FleetFigures:
    """``current()``: the store's figures now, from each host's part, worked out again only for a
    host that changed."""

    def __init__(self, store: FleetStore) -> None:
        self.store = store
        self.counted: Figures | None = None
        self.version = -1  # the store's version when counted
        self.valid_from = math.inf  # the store's clock when counted: a replay's clock can go back
        self.per_host: dict[str, _HostPart] = {}
        self.states = dict.fromkeys(HostState, 0)
        self.totals = [0, 0, 0]  # GPUs, busy, lost
        self.widths: Counter[int] = Counter()  # hosts by their GPU count: the widest is the largest
        self.deadlines: list[tuple[float, str]] = []  # (stale deadline, host), a heap; some outdated
        self.queued: dict[str, float] = {}  # each host's entry in the heap: at most one that is not outdated
        self.generation = 0  # counts so far: what was worked out from the figures' hosts keys on it
        self.full_counts = 0  # of them, the ones that walked every host
        self.recounts = 0  # hosts' parts worked out, one by one or in a full count
        self.moved = False  # a part was worked out as its host changed: the next ``current()`` is new
        self.untrack = untracker()  # each host's part, out of the collector's walk (``_HostPart``)

    def follow(self) -> None:
        """Work out each host's part as the store changes it, not at the next ``current()``."""
        self.store.host_listeners.append(self._host_changed)

    def unfollow(self) -> None:
        if self._host_changed in self.store.host_listeners:
            self.store.host_listeners.remove(self._host_changed)

    def _host_changed(self, name: str) -> None:
        """The store changed ``name`` and nothing else since the last count: its part alone, now.
        Behind that (a change to the whole store, none counted yet, a clock gone back), the next
        ``current()`` catches up as it would without following."""
        store = self.store
        now = store.clock()
        if self.counted is None or self.version != store.version - 1 or now < self.valid_from:
            return
        self._recount(name, now)
        self.version, self.valid_from = store.version, now
        self.moved = True

    def current(self) -> Figures:
        """The figures now, with the parts of the hosts that changed (or turned stale) worked out again."""
        store, now = self.store, self.store.clock()
        changed = store.changed_since(self.version)
        if self.counted is None or changed is None or now < self.valid_from:
            self._count_all(now)
            moved = True
        else:
            names = (*changed, *self._due(now))
            for name in names:
                self._recount(name, now)
            moved = bool(names) or self.moved
        self.version, self.valid_from = store.version, now
        if moved or self.counted is None:
            widest = max((w for w, n in self.widths.items() if n), default=0)
            gpus, busy, lost = self.totals
            self.counted = Figures(dict(self.states), gpus, busy, lost, widest)
            self.generation += 1
            self.moved = False
        return self.counted

    def _count_all(self, now: float) -> None:
        self.full_counts += 1
        self.per_host.clear()
        self.states = dict.fromkeys(HostState, 0)
        self.totals = [0, 0, 0]
        self.widths.clear()
        self.deadlines = []
        self.queued.clear()
        for name in self.store.hosts:
            self._recount(name, now)

    def _due(self, now: float) -> list[str]:
        """Hosts whose stale deadline passed with no frame since.

        A host has one entry in the heap, not one per frame: a frame moves its deadline later and
        leaves the entry where it was; when that entry comes due and the host's part says a later
        deadline, the entry goes back in at that one. At 4,096 hosts that is a push and a pop per
        host every few seconds, not per frame (each second, 4,096 pops of outdated entries)."""
        due, heap, queued = [], self.deadlines, self.queued
        while heap and heap[0][0] < now:
            deadline, name = heapq.heappop(heap)
            if queued.get(name) != deadline:
                continue  # outdated: an earlier deadline was queued for the host since
            del queued[name]
            part = self.per_host.get(name)
            if part is None or part.deadline == math.inf:
                continue
            if part.deadline < now:
                due.append(name)
            else:
                self._queue(name, part.deadline)
        return due

    def _queue(self, name: str, deadline: float) -> None:
        """The host's deadline in the heap, unless an entry at or before it is there already."""
        queued = self.queued.get(name)
        if queued is None or deadline < queued:
            self.queued[name] = deadline
            heapq.heappush(self.deadlines, (deadline, name))

    def _recount(self, name: str, now: float) -> None:
        """Take the host's old part out of the figures and put its new one in (where it differs)."""
        self.recounts += 1
        old = self.per_host.get(name)
        record = self.store.hosts.get(name)
        if record is None:
            if old is not None:
                del self.per_host[name]
                self._add(old, -1)
            return
        part = self._part(record, old, now)
        if part is not old:
            if old is not None:
                self._add(old, -1)
            if self.untrack is not None:
                self.untrack(id(part))
            self.per_host[name] = part
            self._add(part, 1)
        if part.deadline != math.inf:
            self._queue(name, part.deadline)

    def _add(self, part: _HostPart, sign: int) -> None:
        self.states[part.state] += sign
        self.totals[0] += sign * part.gpus
        self.totals[1] += sign * part.busy
        self.totals[2] += sign * part.lost
        self.widths[part.widest] += sign

    @staticmethod
    def _part(record: HostRecord, old: _HostPart | None, now: float) -> _HostPart:
        """The host's part now: ``old`` itself, moved to this sample in place, where its figures are
        as they were (most frames), so that the caller's ``is`` tells it nothing is to be recounted;
        else a new part. Its GPUs are counted again only when its sample or hello is new."""
        state = record.state(now)
        stale_at = record.stale_at() if state is HostState.LIVE else None
        deadline = math.inf if stale_at is None else stale_at  # stale once the clock is past it, as state() says
        hello = record.hello
        if old is not None and old.sample_no == record.sample_no and old.hello is hello:
            count, busy, lost, widest = old.gpus, old.busy, old.lost, old.widest  # its GPUs as counted
        else:
            source = hello.source if hello else None
            columns = record.columns  # not the GPUs: a host's are made only when a reader wants them whole
            said = len(hello.gpus) if hello else 0
            count = len(columns.indices)
            # Where processes are not listed, judged by holder and memory: such a source's GPUs are whole already.
            busy = in_use_count(record.last_gpus, source) if source in NO_PROCESS_LIST else columns.running.count(True)
            lost = columns.lost.count(True)
            widest = count or said
        if old is not None and (old.state, old.gpus, old.busy, old.lost, old.widest) == (state, count, busy, lost, widest):
            old.sample_no, old.hello, old.deadline = record.sample_no, hello, deadline  # figures as they were
            return old
        return _HostPart(record.sample_no, hello, state, deadline, count, busy, lost, widest)
