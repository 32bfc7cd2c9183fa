"""One host's stream of changes to whole samples (gputui/protocol.py, CHANGES_VERSION).

An agent asked for changes sends a keyframe and then deltas of only what
moved. Every source keeps one :class:`FrameDecoder` per connection so the
rest of the dashboard only ever sees whole :class:`~gputui.frames.Sample`
frames; models that did not change are shared with the sample before, which
is most of what the changes save on this side of the wire.

Every frame leaves the decoder out of the garbage collector's walk
(gputui/frame_untracking.py says why), and what a delta makes (a GPU's model
and its values, a process list, a changed process) is taken out as it is
made: the decoder knows exactly which objects are new, where a walk of the
whole sample after decoding asked each part of every GPU whether it was
(about 15 % of decoding and untracking a second of the demo's frames).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from gputui.frame_columns import GpuColumns, columns_after, columns_of
from gputui.frame_sharing import built, share, shared_names, shared_value
from gputui.frame_untracking import Untrack, is_tracked, process_untracker, untrack_frame, untrack_part, untrack_shell
from gputui.frames import (
    Delta,
    ErrorFrame,
    FrameError,
    GpuPatch,
    GpuSample,
    Hello,
    ProcessInfo,
    ProcessPatch,
    Result,
    Sample,
    parse_line,
)


class FrameDecoder:
    """One host's stream of frames to whole frames: a :class:`Delta` is applied to
    the GPUs of the sample before it, reusing every model that did not change.

    A delta that cannot be applied (none since the last keyframe, a sample
    missed, a GPU the keyframe did not have) is a :class:`FrameError`, and
    every delta after it is too until the next keyframe: the host is shown as
    of its last whole sample, never as a guess."""

    def __init__(self, untrack: Untrack | None = None) -> None:
        """``untrack``: CPython's ``PyObject_GC_UnTrack`` (the process's one by default; None where
        there is none): a delta's new objects are taken out of the collector's walk with it."""
        # The last whole sample's GPUs, in the keyframe's order (None: waiting for one), and each
        # GPU's place in that list by its index. A list the store already holds and a dict of
        # plain numbers: a dict of the GPUs themselves, made anew at each host's keyframe and
        # changed by every delta, was a tracked object per host that every full collection walked.
        self.gpus: list[GpuSample] | None = None
        self.places: dict[int, int] = {}
        # The last whole sample's GPUs by field (gputui/frame_columns.py), for the store: a delta
        # remakes only the columns it changes. None while ``gpus`` is.
        self.columns: GpuColumns | None = None
        self.seq = 0
        self.untrack = untrack if untrack is not None else process_untracker()

    def frame(self, line: bytes | str) -> Hello | Sample | ErrorFrame | Result:
        """One line of the host's stream to a whole frame (:func:`parse_line`, then :meth:`decode`)."""
        return self.decode(parse_line(line))

    def decode(self, frame: Hello | Sample | Delta | ErrorFrame | Result) -> Hello | Sample | ErrorFrame | Result:
        if isinstance(frame, Hello):
            share(frame)
            self._untrack(frame)
            self.gpus = self.columns = None  # a new stream: its first sample is a keyframe
        elif isinstance(frame, Sample):
            share(frame)
            self._untrack(frame)
            self.gpus = frame.gpus
            self.columns = columns_of(frame.gpus, self.untrack)
            self.places = {g.index: place for place, g in enumerate(frame.gpus)}
            self.seq = frame.seq
        elif isinstance(frame, Delta):
            return self._apply(frame)
        return frame

    def _untrack(self, frame: Hello | Sample) -> None:
        if self.untrack is not None:
            untrack_frame(frame, self.untrack)

    def _apply(self, delta: Delta) -> Sample:
        before, columns = self.gpus, self.columns
        self.gpus = self.columns = None  # until this delta is applied whole
        if before is None or columns is None:
            raise FrameError(f"changes of sample {delta.seq} came with no keyframe before them: waiting for the next")
        if delta.seq != self.seq + 1:
            raise FrameError(f"changes of sample {delta.seq} follow sample {self.seq}: waiting for the next keyframe")
        # A new list, which the new sample holds: the one before stays as the sample handed on before has it.
        gpus = list(before)
        places, untrack = self.places, self.untrack
        for patch in delta.gpus:
            index = patch["index"]
            place = places.get(index)
            if place is None:
                raise FrameError(f"changes for GPU {index}, which the keyframe did not have: waiting for the next")
            gpus[place] = patched_gpu(gpus[place], patch, delta.seq, untrack)
        self.gpus, self.seq = gpus, delta.seq
        self.columns = columns_after(columns, gpus, set().union(*delta.gpus), untrack)
        sample = _sample(delta, gpus)
        self._untrack(sample)  # the sample, its list, its ledger and events: its GPUs are already
        return sample


_M = TypeVar("_M", bound=BaseModel)


def _sample(delta: Delta, gpus: list[GpuSample]) -> Sample:
    """The whole sample a delta stands for (``Sample.model_construct`` without its per-field walk)."""
    values = {**delta.__dict__, "type": "sample", "gpus": gpus, "key": False}
    return built(Sample, values, shared_names(values.keys()))


def replaced(model: _M, update: dict[str, Any]) -> _M:
    """``model.model_copy(update=update)`` at a fraction of the cost (it was most of decoding a
    delta): values already validated, the models frozen, so every part not updated is shared."""
    fields_set = model.__pydantic_fields_set__
    if not fields_set.issuperset(update):
        fields_set = shared_names(fields_set | update.keys())
    return built(type(model), {**model.__dict__, **update}, fields_set)


# The GPU fields whose value can be a container (a model, a list, a dict): a delta's other values
# are plain numbers and words, which need neither sharing nor untracking.
CONTAINER_PATCH_KEYS = frozenset(
    {"throttle", "ecc", "retired_pages", "remapped_rows", "nvlink", "throttle_ms", "field_errors", "processes", "mig"}
)


def patched_gpu(before: GpuSample, patch: GpuPatch, seq: int, untrack: Untrack | None = None) -> GpuSample:
    """``before`` with what ``patch`` carries; every part it does not name is the same object.
    With ``untrack``, every object made here is out of the collector's walk when it returns."""
    update: dict[str, Any] = dict(patch)
    del update["index"]
    if "lost" in update and update["lost"] is None:
        update["lost"] = False
    changes = update.pop("process_changes", None)  # plain values, applied to models already shared
    if "processes" in update and update["processes"] is None:
        update["processes"] = []
    for key in CONTAINER_PATCH_KEYS.intersection(update):  # most deltas: none
        value = update[key]
        if value is not None:
            value = update[key] = shared_value(value)  # validated just now, as a keyframe's are: shared as theirs are
            if untrack is not None and is_tracked(value):
                untrack_part(value, untrack)
    if changes is not None and "processes" not in update:
        update["processes"] = patched_processes(before, changes, seq, untrack)
    gpu = replaced(before, update)
    if untrack is not None:
        untrack_shell(gpu, untrack)  # its values are plain or out of the walk already
    return gpu


def patched_processes(gpu: GpuSample, changes: list[ProcessPatch], seq: int, untrack: Untrack | None = None) -> list[ProcessInfo]:
    """The GPU's processes with each change applied; a pid it did not have is a FrameError.
    A patch is applied as it came, ``pid`` included: it is the process's own pid, unchanged.
    With ``untrack``, the new list and each changed process are out of the collector's walk
    (a process's values are plain: copied from values already untracked, they stay so)."""
    by_pid: dict[int, Any] = {p["pid"]: p for p in changes}
    out = list(gpu.processes)
    if untrack is not None:
        untrack(id(out))
    for i, process in enumerate(out):
        patch = by_pid.pop(process.pid, None)
        if patch is not None:
            out[i] = changed = replaced(process, patch)
            if untrack is not None:
                untrack_shell(changed, untrack)
            if not by_pid:
                return out
    if by_pid:
        pids = ", ".join(str(p) for p in by_pid)
        raise FrameError(f"changes of sample {seq} for process {pids}, not on GPU {gpu.index}: waiting for the next keyframe")
    return out
