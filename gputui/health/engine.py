"""The health engine: findings become alerts, with damping, in one pass over the store.

One engine serves the dashboard (evaluated once a second) and ``gputui
check`` (evaluated once, with no hold). What it keeps between evaluations,
and why:

* per alert key, since when the condition has been seen and whether it is
  active yet: a condition must hold for ``hold_s`` before it alerts, and an
  alert goes only after ``clear_s`` without its condition (the rules add
  hysteresis to numeric conditions), so a value hovering at a threshold
  does not flap. Severity rises at once and falls only after ``clear_s``.
  XIDs and lost GPUs are events, not levels: they alert at once.
* per GPU, the error counters and when they rose, for "climbing" rules.

XIDs are read from the store's own log of each host (bounded and
de-duplicated across the event API and the kernel log), not copied here.

The alerts of a host that is not live (stale, down, reconnecting) are kept
as last seen rather than cleared: its data says nothing new either way,
and the host's own alert says so.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import lru_cache

from gputui.config import Thresholds
from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.frame_untracking import untracker
from gputui.frames import XidEvent
from gputui.health.calm import HostCalm
from gputui.health.finding import Context, Finding
from gputui.health.jump import Routes
from gputui.health.model import Alert
from gputui.health.rules import counter_parts, counter_values, host_findings
from gputui.slurm.model import SlurmView

ALWAYS_JUDGED = frozenset({"xid", "stale", "down"})  # judged whatever the host's state
# A task the loop wakes waits out the rest of the turn its time came in, the next turn (which
# makes it ready) and part of the one after: two to three turns, each holding a slice, a share
# of the frames and at times a refresh. Slices of 64 hosts and 512 alerts (5 to 8 ms) made that
# wait 43 ms at p99 at 2,048 hosts; halved, 34 (docs/scale.md, "Shorter turns").
HOSTS_PER_STEP = 32  # about 3 ms of rules at 8 GPUs a host
ALERTS_PER_STEP = 256  # about 1.5 ms of alerts made (``HealthEngine._update``)
# The dashboard's slices end sooner where this much time has gone (``evaluate_in_steps``' slice_s):
# at 4,096 hosts, hosts that keep turning stale and back, on a core the feeds share, 32 hosts took
# 4 to 5 ms, and every turn of the loop held one such slice besides its frames.
SLICE_S = 0.002


@dataclass
class _Tracked:
    """One alert key between evaluations: pending until it has held, then active."""

    host: str
    rule: str
    first_seen: float
    since: float
    immediate: bool = False  # an event or a lost GPU: no hold on the way in, no damping on the way out
    active: bool = False
    clear_since: float | None = None  # its condition went away at
    lower_since: float | None = None  # its severity has been lower since
    alert: Alert | None = None


@dataclass
class _HostMemory:
    sample_no: int = 0  # the last sample observed (HostRecord.sample_no)
    counters: dict[tuple[int, str], int] = field(default_factory=dict)  # (GPU, counter) -> its last value
    # (wall time, by how much) of each rise within the window, for a counter that rose: most never
    # do, and an empty deque for each of a fleet's counters was a tenth of the dashboard's memory.
    rises: dict[tuple[int, str], deque[tuple[float, int]]] = field(default_factory=dict)
    # Per GPU, the parts of its last sample the counters came from: a GPU whose parts are the same
    # (the same objects, as a stream of changes keeps them, or equal ones) has nothing new to count.
    read_from: dict[int, tuple[object, ...]] = field(default_factory=dict)
    # The columns the counters were last read from (indices, ECC, PCIe replays, NVLink): a host whose
    # columns are the same (a stream of changes keeps a column no change touched) has nothing new.
    counted_from: tuple[object, ...] = ()
    calm: HostCalm = field(default_factory=HostCalm)  # whether all its GPUs are calm, kept between passes


@lru_cache(maxsize=4096)
def counter_key(gpu: int, counter: str) -> tuple[int, str]:
    """One key object for GPU ``gpu``'s ``counter`` on every host: each host's memory keeps its
    counters under such keys, a tuple and a name each (47 a host: 11 MB at 4,096 hosts) otherwise."""
    return (gpu, counter)


class HealthEngine:
    """``evaluate(store)`` gives the active alerts, worst first."""

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        clock: Callable[[], float] = time.time,
        hold_s: float | None = None,
        clear_s: float | None = None,
    ) -> None:
        """``clock`` is the wall clock (alerts' ``since``, XID times); ``hold_s`` and
        ``clear_s`` default to the thresholds' ``alert_hold_s`` and ``alert_clear_s``."""
        self.thresholds = thresholds if thresholds is not None else Thresholds()
        self.clock = clock
        self.hold_s = self.thresholds.alert_hold_s if hold_s is None else hold_s
        self.clear_s = self.thresholds.alert_clear_s if clear_s is None else clear_s
        self._tracked: dict[str, _Tracked] = {}
        self._hosts: dict[str, _HostMemory] = {}
        self.untrack = untracker()  # the alerts made each pass, out of the collector's walk (``_alert``)
        self.resets = 0  # a pass paused across a reset stops there (``evaluate_in_steps``)

    def reset(self) -> None:
        """Forget everything judged so far: a replay that jumps in time starts
        over from the store as it now is, as an operator opening it there would."""
        self._tracked.clear()
        self._hosts.clear()
        self.resets += 1

    # -- what happened between evaluations ------------------------------------------
    def observe(self, store: FleetStore) -> None:
        """Take each host's new sample's error counters. Cheap when nothing changed,
        so ``gputui check`` calls it on every store change to miss no sample."""
        now = self.clock()
        for name, record in store.hosts.items():
            self._observe_host(name, record, now)

    def _observe_host(self, name: str, record: HostRecord, now: float) -> _HostMemory:
        """One host's part of ``observe``: the evaluation takes it host by host, just before
        judging the host, so that no step of it walks the whole fleet. Its memory, for the rest."""
        memory = self._hosts.get(name)
        if memory is None:
            memory = self._hosts[name] = _HostMemory()
            if self.untrack is not None:  # lives as long as the host, and refers to nothing that refers back to it
                self.untrack(id(memory.calm))
        if not record.has_sample or record.sample_no == memory.sample_no:
            return memory
        memory.sample_no = record.sample_no
        c = record.columns
        counted_from = (c.indices, c.ecc, c.pcie_replays, c.nvlink)
        if counted_from == memory.counted_from:
            return memory  # every GPU's parts as the last time (below): nothing new to count
        memory.counted_from = counted_from
        read_from = memory.read_from
        for g in record.last_gpus:  # made whole: a counter's value moved, or the GPUs did
            parts = counter_parts(g)
            if read_from.get(g.index) == parts:
                continue  # the same objects, mostly (frames share equal counters): nothing new to count
            read_from[g.index] = parts
            for counter, value in counter_values(g).items():
                self._count(memory, counter_key(g.index, counter), value, now)
        return memory

    @staticmethod
    def _count(memory: _HostMemory, key: tuple[int, str], value: int, now: float) -> None:
        before = memory.counters.get(key)
        memory.counters[key] = value  # the first value is a baseline; a lower one, a reset: counting starts again
        if before is not None and value > before:
            memory.rises.setdefault(key, deque()).append((now, value - before))

    def _context(
        self, record: HostRecord, now: float, mono_now: float, slurm: SlurmView | None = None, plain: Context | None = None
    ) -> Context:
        """What the rules are told of one host. ``plain``: the pass's context for a host with no XIDs,
        no counter that rose and no Slurm job (most hosts, most seconds), given as it is to one."""
        memory = self._hosts.get(record.name)  # not a default made for every host on every pass
        jobs = {}
        if slurm is not None:
            jobs = {i: job.label() for i in record.columns.indices if (job := slurm.job_on(record.name, i)) is not None}
        if plain is not None and not record.events and (memory is None or not memory.rises) and not jobs:
            return plain
        xids, last_xid = self._xids(record, now)
        counter_from = now - self.thresholds.counter_window_minutes * 60.0
        climbs: dict[tuple[int, str], int] = {}
        risen = memory.rises if memory is not None else {}
        for key, rises in list(risen.items()):
            while rises and rises[0][0] < counter_from:
                rises.popleft()
            if rises:
                climbs[key] = sum(by for _, by in rises)
            else:
                del risen[key]
        return Context(self.thresholds, now, mono_now, xids, last_xid, climbs, jobs)

    def _xids(self, record: HostRecord, now: float) -> tuple[list[XidEvent], dict[int | None, XidEvent]]:
        """The host's XIDs within the window, oldest first, and each GPU's newest
        one however old (a lost GPU's alert cites it). Only XIDs up to ``now``:
        a replay's clock can be behind frames the store has already read."""
        if not record.events:
            return [], {}  # the usual case, on every host, every second
        xid_from = now - self.thresholds.xid_window_minutes * 60.0
        seen = sorted((e for e in record.events if e.t <= now), key=lambda e: e.t)
        last_xid = {e.gpu: e for e in seen}  # sorted: the newest of each GPU wins
        return [e for e in seen if e.t >= xid_from], last_xid

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, store: FleetStore) -> list[Alert]:
        """The active alerts, worst first: severity, then oldest, then host and GPU."""
        steps = self.evaluate_in_steps(store)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def evaluate_in_steps(
        self,
        store: FleetStore,
        hosts_per_step: int = HOSTS_PER_STEP,
        alerts_per_step: int = ALERTS_PER_STEP,
        slice_s: float | None = None,
    ) -> Generator[None, None, list[Alert]]:
        """``evaluate``, pausing after every ``hosts_per_step`` hosts and every ``alerts_per_step``
        alerts made: a dashboard drives it across turns of its event loop, so that judging 1,024
        hosts never holds up a keystroke or a redraw for the whole pass. With ``slice_s`` a slice
        also ends once it has taken that long (by ``time.perf_counter``): what a host costs
        varies with the machine and with what the host has to say, and a count alone let slices
        run twice their intended length where hosts were slower to judge.

        A reset while it is paused (a replay that jumped) ends it at once with the alerts as they
        are since: what it found was found at the other moment, and finishing would bring those
        findings back into the fresh start, an XID from before the jump among them."""
        era = self.resets
        now, mono_now = self.clock(), store.clock()
        self._forget_gone(store)
        seen: dict[str, tuple[str, Finding]] = {}
        not_live: set[str] = set()
        routes = Routes()  # for grouping hosts down behind one jump host, taken as each host is judged
        untrack = self.untrack
        plain = Context(self.thresholds, now, mono_now)
        budget = math.inf if slice_s is None else slice_s
        sliced_at, in_slice = time.perf_counter(), 0
        # The names, not (name, record) pairs: a pass lasts many turns of the loop, and a tuple per
        # host lived through them into the collector's older generations (4,096 at 4,096 hosts).
        for name in list(store.hosts):
            if in_slice >= hosts_per_step or (in_slice and time.perf_counter() - sliced_at >= budget):
                yield
                if self.resets != era:
                    return self._active()
                sliced_at, in_slice = time.perf_counter(), 0
            in_slice += 1
            record = store.hosts.get(name)
            if record is None:
                continue  # removed while the pass was paused
            memory = self._observe_host(name, record, now)  # its counters, as ``observe`` takes them
            state = record.state(mono_now)
            if state is not HostState.LIVE:
                not_live.add(name)
                all_calm = False
            else:
                all_calm = memory.calm.all_calm(record.columns, record.statics, self.thresholds)
            routes.add(record, state)
            context = self._context(record, now, mono_now, store.slurm, plain)
            for finding in host_findings(record, context, state, all_calm):
                seen[finding.key(name)] = found = (name, finding)
                if untrack is not None:  # plain data, as an alert is (``_alert`` says why)
                    untrack(id(found))
                    untrack(id(finding))
                    untrack(id(finding.evidence))
        explained = self._group_by_jump_host(routes, seen, now, mono_now)
        for key in explained:  # explained, not cleared: gone at once, with no clear time
            self._tracked.pop(key, None)
        yield from self._update(seen, not_live, now, alerts_per_step, era, budget)
        yield  # sorting the active alerts is a turn's work of its own (5 ms for 4,000 of them)
        return self._active()

    def _active(self) -> list[Alert]:
        """The active alerts, worst first: severity, then oldest, then host and GPU."""
        alerts = [t.alert for t in self._tracked.values() if t.active and t.alert is not None]
        return sorted(alerts, key=lambda a: (-a.severity, a.since, a.host, -1 if a.gpu is None else a.gpu, a.key))

    @staticmethod
    def _group_by_jump_host(routes: Routes, seen: dict[str, tuple[str, Finding]], now: float, mono_now: float) -> set[str]:
        """Replace the "down" findings of hosts cut off by one jump host with that
        jump host's finding (:mod:`gputui.health.jump`); the keys replaced."""
        explained: set[str] = set()
        for outage in routes.outages(now, mono_now):
            for name in outage.hosts:
                key = f"down:{name}"
                seen.pop(key, None)
                explained.add(key)
            seen[outage.finding.key(outage.jump)] = (outage.jump, outage.finding)
        return explained

    def _forget_gone(self, store: FleetStore) -> None:
        """A host removed from the store takes its alerts and memory with it
        (a jump host is in the store only if it is a GPU host too: its alert clears as any other).

        Every host judged has a memory, and only this drops one, so when every remembered host is
        still in the store no alert's host has gone either: the usual case costs one C-level
        comparison of the two key sets, not a rebuild of both dicts each second."""
        if self._hosts.keys() <= store.hosts.keys():
            return
        self._hosts = {k: v for k, v in self._hosts.items() if k in store.hosts}
        self._tracked = {k: t for k, t in self._tracked.items() if t.host in store.hosts or t.rule == "jump"}

    def _update(
        self,
        seen: dict[str, tuple[str, Finding]],
        not_live: set[str],
        now: float,
        per_step: int,
        era: int,
        budget: float = math.inf,
    ) -> Generator[None, None, None]:
        """Bring the tracked conditions up to what this pass saw, pausing every ``per_step`` of them
        (or sooner, once a slice has taken ``budget`` seconds):
        each active one is made into a new alert, and at 4,096 hosts' 4,128 alerts that was 25 to
        40 ms in one go, the pass's longest hold of the event loop. A whole ``evaluate`` run
        meanwhile (the triage's refresh) is taken as if it came first: this one's findings win,
        and a condition both cleared is dropped once. A reset meanwhile (``era`` no longer the
        engine's) ends it: its findings belong to the moment before."""
        sliced_at, in_slice = time.perf_counter(), 0
        for key, (host, finding) in seen.items():
            if in_slice >= per_step or (in_slice and time.perf_counter() - sliced_at >= budget):
                yield
                if self.resets != era:
                    return
                sliced_at, in_slice = time.perf_counter(), 0
            in_slice += 1
            tracked = self._tracked.get(key)
            if tracked is None:
                if finding.band:
                    continue  # within the hysteresis band: keeps an alert, never starts one
                since = finding.since if finding.since is not None else now
                tracked = self._tracked[key] = _Tracked(host, finding.rule, now, since, finding.immediate)
            tracked.clear_since = None
            if not tracked.active and (finding.immediate or now - tracked.first_seen >= self.hold_s):
                tracked.active = True
            tracked.alert = self._alert(key, host, finding, tracked, now)
        for key, tracked in list(self._tracked.items()):
            if key in seen or (tracked.host in not_live and tracked.rule not in ALWAYS_JUDGED):
                continue
            if tracked.active and tracked.clear_since is None:
                tracked.clear_since = now
            if not tracked.active or tracked.immediate or now - (tracked.clear_since or now) >= self.clear_s:
                self._tracked.pop(key, None)

    def _alert(self, key: str, host: str, f: Finding, tracked: _Tracked, now: float) -> Alert:
        severity = f.severity
        before = tracked.alert.severity if tracked.alert is not None else None
        if tracked.active and before is not None and severity < before:
            if tracked.lower_since is None:
                tracked.lower_since = now
            if now - tracked.lower_since < self.clear_s:
                severity = before  # falls only after clear_s, as an alert clears
        else:
            tracked.lower_since = None
        old = tracked.alert
        if (
            old is not None
            and old.severity == severity
            and old.since == tracked.since
            and old.title == f.title
            and old.evidence == f.evidence
            and old.advice == f.advice
            and old.behind == f.behind
        ):
            return old  # as it was (most alerts, most passes): compared in 0.2 µs, made anew in 1.4 and untracked
        alert = Alert(key, f.rule, severity, host, f.gpu, f.title, f.advice, tracked.since, dict(f.evidence), f.behind)
        # An alert that changed is made anew, and lives at least until the next pass: at 4,096
        # hosts, a second or two, long enough for the collector to walk it among the middle
        # generation (4,128 of its 40,572 objects at one collection, when every pass made every
        # alert anew). An alert is plain data
        # (words, numbers, a dict of words) and refers to nothing that could refer back to it,
        # so it can never be part of a cycle, and reference counting frees it.
        if self.untrack is not None:
            self.untrack(id(alert))
        return alert
