"""A host's GPUs made into models only when a reader asks for them.

A delta changes most GPUs of a busy host every second (utilisation, power,
each process's CPU share), and making a new frozen model for every changed
GPU and process was most of reading a frame (about two thirds of the
decoder's time at 1,024 demo hosts). Yet most of those models were never
read: the readers that go over every host each second read the host's
columns (gputui/frame_columns.py), and only a host on screen, one whose GPUs
the health rules look at one by one, or an idle GPU the idle-holding rule
asks about, needs a GPU whole.

So a host's stream keeps its GPUs as the models last made and, for each GPU,
the changes since, merged (a later value over an earlier one; a process's
changes by pid). A reader that asks for one GPU gets it made then, once;
one that asks for the whole sample gets every GPU made. What a delta
carries is checked as it comes, not when it is made: a GPU the keyframe
did not have, or a change to a process the GPU does not run, is a
:class:`~gputui.frames.FrameError` at once, as before.

A :class:`Later` (what the store keeps of a delta) is good until the next
delta of its stream: the store replaces it then, in the same call. A
stream that starts again (a keyframe, a lost delta) starts a new
:class:`StreamGpus`, so the last sample of the old one can still be made.
What is pending is taken out of the collector's walk as it is merged, as
everything a decoder makes is (gputui/frame_untracking.py): at 4,096 hosts
it is tens of thousands of small dictionaries.
"""

from __future__ import annotations

from typing import Any, TypeVar

from gputui.frame_sharing import built, shared_names
from gputui.frame_untracking import Untrack, is_tracked, untrack_frame, untrack_shell
from gputui.frames import FrameError, GpuSample, LedgerSummary, ProcessInfo, Sample, XidEvent

# Where, in a GPU's pending changes, its processes' changes are kept: by pid, merged.
PROCESS_CHANGES = "process_changes"


class StreamGpus:
    """One stream's GPUs since its keyframe: each as the model last made, and what changed since."""

    __slots__ = ("gpus", "pending", "pids", "places", "seq", "untrack")

    def __init__(self, gpus: list[GpuSample], seq: int, untrack: Untrack | None) -> None:
        self.gpus = list(gpus)  # its own list: a sample handed on keeps the list it was made with
        self.places = {g.index: place for place, g in enumerate(gpus)}
        self.pending: dict[int, dict[str, Any]] = {}  # by place: changed fields, PROCESS_CHANGES by pid
        # By place, the pids a process change may name: tuples of numbers, which need no walk.
        self.pids = [tuple(p.pid for p in g.processes) for g in gpus]
        self.seq = seq
        self.untrack = untrack
        if untrack is not None:  # as long-lived as the host's connection, and holding no cycle
            for part in (self, self.gpus, self.places, self.pending, self.pids):
                untrack(id(part))

    def check(self, place: int, update: dict[str, Any], changes: list[dict[str, Any]], seq: int) -> None:
        """A FrameError if ``changes`` names a process the GPU at ``place`` does not run (a whole
        new process list in the same update comes first: changes then are not applied, as sent)."""
        if "processes" in update:
            return
        pids = self.pids[place]
        for change in changes:
            if change["pid"] not in pids:
                missing = [str(c["pid"]) for c in changes if c["pid"] not in pids]
                index = self.gpus[place].index
                raise FrameError(
                    f"changes of sample {seq} for process {', '.join(missing)}, not on GPU {index}: waiting for the next keyframe"
                )

    def merge(self, place: int, update: dict[str, Any], changes: list[dict[str, Any]] | None) -> None:
        """One GPU's changes from a delta (already checked), over those still pending. ``update``
        and ``changes`` are the stream's from then on (:func:`~gputui.frame_decoder.gpu_update`):
        where nothing is pending for the GPU, the update itself is what waits to be made."""
        untrack = self.untrack
        pending = self.pending.get(place)
        if pending is None:
            pending = self.pending[place] = update
            if untrack is not None and is_tracked(self.pending):
                untrack(id(self.pending))  # a container among the values put it back in the walk
        else:
            pending.update(update)
        if "processes" in update:
            pending.pop(PROCESS_CHANGES, None)  # the whole list sent: earlier changes are in it
            self.pids[place] = tuple(p.pid for p in update["processes"])
        elif changes:
            merged = pending.get(PROCESS_CHANGES)
            if merged is None:
                merged = pending[PROCESS_CHANGES] = {}
            for change in changes:
                known = merged.get(change["pid"])
                if known is None:
                    merged[change["pid"]] = change
                else:
                    known.update(change)
            if untrack is not None and is_tracked(merged):
                untrack(id(merged))  # a process's changes put in put it back in the walk
        if untrack is not None and is_tracked(pending):
            untrack(id(pending))  # a container value or the process changes put it back in

    def gpu(self, place: int) -> GpuSample:
        """The GPU at ``place`` as of the last delta, its model made now if anything is pending."""
        pending = self.pending.pop(place, None)
        if pending is None:
            return self.gpus[place]
        self.gpus[place] = gpu = made_gpu(self.gpus[place], pending, self.seq, self.untrack)
        return gpu

    def every_gpu(self) -> list[GpuSample]:
        """Every GPU as of the last delta (a new list, which the sample made of it holds)."""
        for place in list(self.pending):
            self.gpu(place)
        return list(self.gpus)


def made_gpu(before: GpuSample, pending: dict[str, Any], seq: int, untrack: Untrack | None) -> GpuSample:
    """``before`` with the changes merged in ``pending`` (values as the model holds them, containers
    shared and out of the walk already); every part they do not name is the same object."""
    changes = pending.pop(PROCESS_CHANGES, None)
    if changes:
        processes = pending.get("processes", before.processes)
        pending["processes"] = changed_processes(processes, list(changes.values()), untrack)
    gpu = with_values(before, pending)
    if untrack is not None:
        untrack_shell(gpu, untrack)  # its values are plain or out of the walk already
    return gpu


def changed_processes(processes: list[ProcessInfo], changes: list[dict[str, Any]], untrack: Untrack | None) -> list[ProcessInfo]:
    """``processes`` with each change applied (every pid named was checked to be there). A change is
    applied as it came, ``pid`` included: it is the process's own pid, unchanged. With ``untrack``,
    the new list and each changed process are out of the collector's walk."""
    by_pid = {c["pid"]: c for c in changes}
    out = list(processes)
    if untrack is not None:
        untrack(id(out))
    for i, process in enumerate(out):
        change = by_pid.pop(process.pid, None)
        if change is not None:
            out[i] = changed = with_values(process, change)
            if untrack is not None:
                untrack_shell(changed, untrack)
            if not by_pid:
                break
    return out


_M = TypeVar("_M", GpuSample, ProcessInfo)


def with_values(model: _M, values: dict[str, Any]) -> _M:
    """``model.model_copy(update=values)`` at a fraction of the cost: the values are validated
    already and the models frozen, so every part not named is shared."""
    names = model.__pydantic_fields_set__
    if not names.issuperset(values):
        names = shared_names(names | values.keys())
    return built(type(model), {**model.__dict__, **values}, names)


class Later:
    """A delta's whole sample, made when first asked for (the store keeps one per host).

    Good until its stream's next delta: asked after that, it is a RuntimeError, never a sample
    of another second."""

    __slots__ = ("gpus", "made", "seq", "values")

    def __init__(self, gpus: StreamGpus, values: dict[str, Any]) -> None:
        self.gpus = gpus
        self.seq = gpus.seq
        self.values = values  # the sample's fields but its GPUs
        self.made: Sample | None = None

    @property
    def events(self) -> list[XidEvent]:
        events: list[XidEvent] = self.values["events"]
        return events

    @property
    def ledger(self) -> LedgerSummary | None:
        ledger: LedgerSummary | None = self.values["ledger"]
        return ledger

    def _current(self) -> StreamGpus:
        if self.gpus.seq != self.seq:
            raise RuntimeError(f"sample {self.seq} was asked for after its stream moved on to {self.gpus.seq}")
        return self.gpus

    def gpu(self, place: int) -> GpuSample:
        """One GPU of the sample, by its place in it."""
        if self.made is not None:
            return self.made.gpus[place]
        return self._current().gpu(place)

    def sample(self) -> Sample:
        """The whole sample (made once)."""
        if self.made is None:
            stream = self._current()
            values = {**self.values, "gpus": stream.every_gpu()}
            self.made = built(Sample, values, shared_names(values.keys()))
            untrack = stream.untrack
            if untrack is not None:
                untrack_frame(self.made, untrack)  # its list, ledger and events: its GPUs are already
        return self.made
