"""The fleet store: what the dashboard knows of each host, and how fresh it is.

Sources write into it; the UI and the snapshot only read it. Freshness is
computed when read, from the time the last frame arrived, so that a host that
went quiet turns ``stale`` on screen without any source having to say so:
old numbers are never shown as live.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gputui.fleet.history import FINE_SAMPLES, GpuHistory, HostHistory
from gputui.frame_columns import NO_GPUS, GpuColumns, columns_of
from gputui.frame_later import Later
from gputui.frame_untracking import untrack_frame, untracker
from gputui.frames import ErrorFrame, GpuSample, GpuStatic, Hello, LedgerSummary, Result, Sample, XidEvent
from gputui.slurm.model import SlurmView

STALE_AFTER_INTERVALS = 3
MAX_EVENTS = 200  # per host: an XID storm must not grow the dashboard
SAME_XID_WITHIN_S = 2.0  # the event API and the kernel log stamp one XID this far apart at most
HISTORY_SAMPLES = FINE_SAMPLES  # fine-tier slots per GPU; the coarse tier covers 1 h at 1 s


class HostState(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    STALE = "stale"
    DOWN = "down"


@dataclass
class HostRecord:
    name: str
    tags: tuple[str, ...] = ()
    group: str | None = None
    hello: Hello | None = None
    # The last sample as made (``sample``), or a delta's still to be made when first asked for
    # (gputui/frame_later.py): one of the two, or neither before the first.
    made: Sample | None = None
    later: Later | None = None
    # The last sample's GPUs by field (gputui/frame_columns.py): what the readers that go over every
    # host each second read, in place of every GPU whole. Set with the sample, always with it.
    columns: GpuColumns = NO_GPUS
    # The store's number of this sample (0: none yet). Readers that only need to know whether a
    # host sent a new sample remember this, not the sample: holding it kept every host's sample
    # before the last alive too, twice the objects the garbage collector walks.
    sample_no: int = 0
    last_frame_at: float | None = None  # monotonic
    down_since: float | None = None
    error: str | None = None
    bad_frames: int = 0
    stale_after: int = STALE_AFTER_INTERVALS
    retry_at: float | None = None  # monotonic time of the next connection attempt
    connects: int = 0
    connecting_since: float | None = None
    fatal: str | None = None  # what the agent said before it gave up, kept over "exited"
    hello_after_s: float | None = None  # connect to first frame, the last time
    via: tuple[str, ...] = ()  # jump hosts of the last connection, first hop first (set by the transport)
    failed_hop: str | None = None  # the jump host whose failure took it down, if that was why
    histories: HostHistory | None = None  # every GPU's, a row per sample (None before the first)
    # The hello's GPUs by index, for ``static``: the overview asks it for every GPU it draws and the
    # rules for every GPU they judge, and a walk of the hello's list each time was a tenth of a line.
    statics: dict[int, GpuStatic] = field(default_factory=dict)
    events: deque[XidEvent] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))  # oldest first

    @property
    def sample(self) -> Sample | None:
        """The last sample, whole (its GPUs' models made now if they were not yet)."""
        later = self.later
        if later is not None:
            self.made, self.later = later.sample(), None
        return self.made

    @property
    def ledger(self) -> LedgerSummary | None:
        """The ledger the last sample carries, without making its GPUs."""
        later = self.later
        if later is not None:
            return later.ledger
        return self.made.ledger if self.made is not None else None

    @property
    def has_sample(self) -> bool:
        """Whether the host sent a sample yet, without making one."""
        return self.later is not None or self.made is not None

    def gpu_at(self, place: int) -> GpuSample:
        """The last sample's GPU at ``place`` (in ``columns``' order), made alone if need be: for a
        reader that wants one GPU of a host it otherwise reads by column."""
        later = self.later
        if later is not None:
            return later.gpu(place)
        if self.made is None:
            raise IndexError(f"{self.name} sent no sample")
        return self.made.gpus[place]

    @property
    def history(self) -> dict[int, GpuHistory]:
        """Each GPU's history by its index (none before the first sample)."""
        return self.histories.gpus if self.histories is not None else {}

    @property
    def interval_s(self) -> float:
        return self.hello.interval_s if self.hello else 1.0

    def state(self, now: float) -> HostState:
        if self.down_since is not None:
            return HostState.DOWN
        stale_at = self.stale_at()
        if self.hello is None or stale_at is None:
            return HostState.CONNECTING
        if now > stale_at:
            return HostState.STALE
        return HostState.LIVE

    def stale_at(self) -> float | None:
        """When the host turns stale if nothing more comes (None before its first frame): what
        ``state`` compares with, so that a reader waiting for that moment agrees with it to the bit."""
        return None if self.last_frame_at is None else self.last_frame_at + self.stale_after * self.interval_s

    def age_s(self, now: float) -> float | None:
        return None if self.last_frame_at is None else max(0.0, now - self.last_frame_at)

    def static(self, index: int) -> GpuStatic | None:
        return self.statics.get(index)

    def gpus(self) -> list[GpuSample]:
        sample = self.sample
        return list(sample.gpus) if sample else []

    @property
    def last_gpus(self) -> Sequence[GpuSample]:
        """The last sample's GPUs as it holds them, not copied (``gpus()`` copies), every one made:
        a reader that goes over every host each second reads ``columns`` instead."""
        sample = self.sample
        return sample.gpus if sample is not None else ()


class FleetStore:
    """All hosts by name, in the order they were added."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        history_samples: int = HISTORY_SAMPLES,
        stale_after: int = STALE_AFTER_INTERVALS,
    ) -> None:
        self.clock = clock
        self.stale_after = stale_after
        self.history_samples = history_samples
        self.hosts: dict[str, HostRecord] = {}
        self.version = 0  # bumped on every change, so readers can skip redraws
        # Each host's last change by version, oldest first, so that a reader that saw version V reads
        # only the hosts changed since (``changed_since``), and the last change not to one host
        # (Slurm, hosts cleared): a reader that saw less starts over.
        self.touched: dict[str, int] = {}
        self.whole_changed = 0
        self.samples = 0  # samples applied, to number each host's last (HostRecord.sample_no)
        self.listeners: list[Callable[[], None]] = []
        self.host_listeners: list[Callable[[str], None]] = []  # told which host, after ``listeners``
        self.slurm: SlurmView | None = None  # the site's Slurm, where [slurm] is set: jobs, node states, reservations
        self.untrack = untracker()  # frames kept here are never walked by the collector (gputui/frame_untracking.py)

    def _changed(self, name: str | None = None) -> None:
        self.version += 1
        if name is None:
            self.whole_changed = self.version
        else:
            self.touched.pop(name, None)  # to the end: the order stays that of the versions
            self.touched[name] = self.version
        for listener in self.listeners:
            listener()
        if name is not None:
            for host_listener in self.host_listeners:
                host_listener(name)

    def add_host(self, name: str, tags: tuple[str, ...] = (), group: str | None = None) -> HostRecord:
        record = self.hosts.get(name)
        if record is None:
            record = HostRecord(name=name, tags=tags, group=group, stale_after=self.stale_after)
            self.hosts[name] = record
            self._changed(name)
        return record

    def changed_since(self, version: int) -> list[str] | None:
        """The hosts changed after ``version``, or None when something else changed too."""
        if self.whole_changed > version:
            return None
        names = []
        for name, at in reversed(self.touched.items()):
            if at <= version:
                break
            names.append(name)
        return names

    def clear_hosts(self) -> None:
        self.hosts.clear()
        self.touched.clear()
        self._changed()

    def apply(self, name: str, frame: Hello | Sample | Later | ErrorFrame | Result, columns: GpuColumns | None = None, /) -> None:
        """``columns``: a sample's GPUs by field where its source made them (a host's decoder,
        always with a :class:`Later`); made here from its GPUs where not. Passed over for any
        other frame."""
        record = self.hosts[name]
        now = self.clock()
        record.last_frame_at = now
        record.down_since = None
        if isinstance(frame, Later):  # most frames: a plain class's check, in C (a model's is in Python)
            if columns is None:
                raise ValueError(f"{name}: a sample to be made later came without its columns")
            record.made, record.later, record.columns = None, frame, columns  # its decoder keeps what it makes out of the walk
            self._sampled(record, frame.events)
        elif isinstance(frame, Hello):
            self._keep(frame)
            record.hello = frame
            record.statics = {g.index: g for g in frame.gpus}
            record.error = None
            record.failed_hop = None
            if record.connecting_since is not None:
                record.hello_after_s = now - record.connecting_since
        elif isinstance(frame, Sample):
            self._keep(frame)
            record.made, record.later = frame, None
            record.columns = columns if columns is not None else columns_of(frame.gpus, self.untrack)
            self._sampled(record, frame.events)
        elif isinstance(frame, ErrorFrame):
            record.error = frame.message
            if frame.fatal:
                record.fatal = frame.message
                record.down_since = now
        self._changed(name)

    def _sampled(self, record: HostRecord, events: list[XidEvent]) -> None:
        """A sample of ``record``'s in: numbered, its history's row written, its XIDs logged."""
        self.samples += 1
        record.sample_no = self.samples
        self._remember(record)
        for event in events:
            if not xid_logged(record.events, event):
                record.events.append(event)

    def _keep(self, frame: Hello | Sample) -> None:
        if self.untrack is not None:
            untrack_frame(frame, self.untrack)

    def _remember(self, record: HostRecord) -> None:
        interval = record.interval_s
        histories = record.histories
        if histories is None:
            histories = record.histories = HostHistory(record.columns.indices, interval, fine_samples=self.history_samples)
        elif histories.interval_s != interval:  # the host came back with another interval
            histories.interval_s = interval
        histories.push_columns(record.columns)

    def set_slurm(self, view: SlurmView) -> None:
        """A new reading of the cluster (or the old one with why it could not be read again)."""
        if view != self.slurm:
            self.slurm = view
            self._changed()

    def mark_bad_frame(self, name: str, error: str) -> None:
        record = self.hosts[name]
        record.bad_frames += 1
        record.error = error
        self._changed(name)

    def mark_down(self, name: str, error: str, hop: str | None = None) -> None:
        """``hop``: the jump host whose own connection failed, when that is why."""
        record = self.hosts[name]
        if record.down_since is None:
            record.down_since = self.clock()
        record.failed_hop = hop
        # The agent's own reason ("no NVIDIA driver") matters more than "it exited".
        record.error = f"{record.fatal} ({error})" if record.fatal else error
        self._changed(name)

    def set_via(self, name: str, via: tuple[str, ...]) -> None:
        """The jump hosts ``name`` is reached through, as its transport found them."""
        record = self.hosts[name]
        if record.via != via:
            record.via = via
            self._changed(name)

    def mark_connecting(self, name: str) -> None:
        """A new attempt: the last data stays (shown with its age) until fresh data replaces it."""
        record = self.hosts[name]
        record.retry_at = None
        record.fatal = None
        record.connects += 1
        record.connecting_since = self.clock()
        self._changed(name)

    def set_retry(self, name: str, delay_s: float) -> None:
        self.hosts[name].retry_at = self.clock() + delay_s
        self._changed(name)

    def counts(self) -> dict[HostState, int]:
        now = self.clock()
        out = dict.fromkeys(HostState, 0)
        for r in self.hosts.values():
            out[r.state(now)] += 1
        return out


def xid_logged(events: Sequence[XidEvent], new: XidEvent) -> bool:
    """Whether ``new`` is an XID already logged: the same one from the other
    source (the kernel log read at an agent's start repeats what the event
    API reported before), or the same kernel-log line sent again by an agent
    that restarted or reconnected. Two events from the API are two XIDs."""
    for old in reversed(events):
        if old.xid != new.xid or old.gpu != new.gpu:
            continue
        if old.source != new.source and abs(old.t - new.t) <= SAME_XID_WITHIN_S:
            return True
        if old.source == new.source == "kernel" and abs(old.t - new.t) < 1e-3 and old.text == new.text:
            return True
    return False
