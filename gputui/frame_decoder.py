"""One host's stream of changes to whole samples (gputui/protocol.py, CHANGES_VERSION).

An agent asked for changes sends a keyframe and then deltas of only what
moved. Every source keeps one :class:`FrameDecoder` per connection so the
rest of the dashboard only ever sees whole :class:`~gputui.frames.Sample`
frames; models that did not change are shared with the sample before, which
is most of what the changes save on this side of the wire.

Every frame leaves the decoder out of the garbage collector's walk
(gputui/frame_untracking.py says why), and what a delta makes (a GPU's model
and its values, a process list, a changed process, what waits to be made:
gputui/frame_later.py) is taken out as it is made: the decoder knows exactly
which objects are new, where a walk of the whole sample after decoding asked
each part of every GPU whether it was (about 15 % of decoding and untracking
a second of the demo's frames).
"""

from __future__ import annotations

from typing import Any, cast

from gputui.frame_columns import GpuColumns, columns_after, columns_of
from gputui.frame_later import Later, StreamGpus
from gputui.frame_sharing import share, shared_value
from gputui.frame_untracking import Untrack, is_tracked, process_untracker, untrack_frame, untrack_part
from gputui.frames import Delta, ErrorFrame, FrameError, GpuPatch, Hello, Result, Sample, parse_line


class FrameDecoder:
    """One host's stream of frames to whole frames: a :class:`Delta` is applied to
    the GPUs of the sample before it, reusing every model that did not change.

    A delta that cannot be applied (none since the last keyframe, a sample
    missed, a GPU the keyframe did not have, a process the GPU does not run)
    is a :class:`FrameError`, and every delta after it is too until the next
    keyframe: the host is shown as of its last whole sample, never as a guess.

    :meth:`frame` makes each sample whole at once; :meth:`frame_later` hands a
    delta's sample on as a :class:`~gputui.frame_later.Later`, whose GPUs are
    made only when asked for (gputui/frame_later.py says why), for the store."""

    def __init__(self, untrack: Untrack | None = None) -> None:
        """``untrack``: CPython's ``PyObject_GC_UnTrack`` (the process's one by default; None where
        there is none): a delta's new objects are taken out of the collector's walk with it."""
        # The stream's GPUs since its keyframe, with each GPU's changes not yet made into its model
        # (None: waiting for a keyframe). Out of the collector's walk, all of it: kept per host for
        # as long as it is connected, it would be walked by every full collection.
        self.stream: StreamGpus | None = None
        # The last sample's GPUs by field (gputui/frame_columns.py), for the store: a delta
        # remakes only the columns it changes. None while ``stream`` is.
        self.columns: GpuColumns | None = None
        self.untrack = untrack if untrack is not None else process_untracker()

    def frame(self, line: bytes | str) -> Hello | Sample | ErrorFrame | Result:
        """One line of the host's stream to a whole frame (:func:`parse_line`, then :meth:`decode`)."""
        return self.decode(parse_line(line))

    def frame_later(self, line: bytes | str) -> Hello | Sample | ErrorFrame | Result | Later:
        """One line of the host's stream to a frame, a delta's sample to be made when asked for."""
        return self.take(parse_line(line))

    def decode(self, frame: Hello | Sample | Delta | ErrorFrame | Result) -> Hello | Sample | ErrorFrame | Result:
        taken = self.take(frame)
        return taken.sample() if isinstance(taken, Later) else taken

    def take(self, frame: Hello | Sample | Delta | ErrorFrame | Result) -> Hello | Sample | ErrorFrame | Result | Later:
        """``frame`` into the stream. A delta is taken apart as it goes in (its GPUs' patches become
        the stream's pending changes, unmade and uncopied): each one parsed is taken once, as every
        reader of a line does; a delta kept to be taken again must be parsed again."""
        if type(frame) is Delta:  # nearly every frame: asked first, and by exact type (below)
            return self._apply(frame)
        # ``isinstance`` against a pydantic model goes through its metaclass's check, in Python.
        if isinstance(frame, Hello):
            share(frame)
            self._untrack(frame)
            self.stream = self.columns = None  # a new stream: its first sample is a keyframe
        elif isinstance(frame, Sample):
            share(frame)
            self._untrack(frame)
            self.stream = StreamGpus(frame.gpus, frame.seq, self.untrack)
            self.columns = columns_of(frame.gpus, self.untrack)
        elif isinstance(frame, Delta):
            return self._apply(frame)
        return frame

    def _untrack(self, frame: Hello | Sample) -> None:
        if self.untrack is not None:
            untrack_frame(frame, self.untrack)

    def _apply(self, delta: Delta) -> Later:
        stream, columns = self.stream, self.columns
        # Until this delta is applied whole. The stream is left as it is: the store's last sample
        # may be one still to be made from it.
        self.stream = self.columns = None
        if stream is None or columns is None:
            raise FrameError(f"changes of sample {delta.seq} came with no keyframe before them: waiting for the next")
        if delta.seq != stream.seq + 1:
            raise FrameError(f"changes of sample {delta.seq} follow sample {stream.seq}: waiting for the next keyframe")
        places, untrack, seq = stream.places, self.untrack, delta.seq
        updates: list[tuple[int, dict[str, Any], list[Any] | None]] = []
        for patch in delta.gpus:
            place = places.get(patch["index"])
            if place is None:
                raise FrameError(f"changes for GPU {patch['index']}, which the keyframe did not have: waiting for the next")
            update, changes = gpu_update(patch, untrack)
            if changes is not None:
                stream.check(place, update, changes, seq)
            updates.append((place, update, changes))
        for place, update, changes in updates:  # every change checked: none is half applied
            stream.merge(place, update, changes)
        stream.seq = seq
        self.stream = stream
        self.columns = columns_after(columns, updates, untrack)
        values = {**delta.__dict__, "type": "sample", "key": False}
        del values["gpus"]
        if untrack is not None:
            untrack(id(values))
            for name in ("ledger", "events"):  # what the sample made of it will hold
                value = values[name]
                if value is not None and is_tracked(value):
                    untrack_part(value, untrack)
        later = Later(stream, values)
        if untrack is not None:
            untrack(id(later))  # refers to the stream and the values only: never to itself
        return later


# The GPU fields whose value can be a container (a model, a list, a dict): a delta's other values
# are plain numbers and words, which need neither sharing nor untracking.
CONTAINER_PATCH_KEYS = frozenset(
    {"throttle", "ecc", "retired_pages", "remapped_rows", "nvlink", "throttle_ms", "field_errors", "processes", "mig"}
)


def gpu_update(patch: GpuPatch, untrack: Untrack | None = None) -> tuple[dict[str, Any], list[Any] | None]:
    """A GPU's changes in a delta as its model will hold them, and its processes' changes apart
    (plain values, applied to the models they change when the GPU is made). With ``untrack``,
    every container among the values is out of the collector's walk when it returns.

    The patch itself becomes the update, ``index`` and the process changes taken out of it: a
    delta's patches are dictionaries its parse made for it alone, and a delta is applied once
    (copying and normalising each GPU's patch was a sixth of applying a delta)."""
    update = cast("dict[str, Any]", patch)
    del update["index"]
    if "lost" in update and update["lost"] is None:
        update["lost"] = False
    changes = update.pop("process_changes", None)
    if "processes" in update and update["processes"] is None:
        update["processes"] = []
    if CONTAINER_PATCH_KEYS.isdisjoint(update):
        return update, changes  # most deltas
    for key in CONTAINER_PATCH_KEYS.intersection(update):
        value = update[key]
        if value is not None:
            value = update[key] = shared_value(value)  # validated just now, as a keyframe's are: shared as theirs are
            if untrack is not None and is_tracked(value):
                untrack_part(value, untrack)
    return update, changes
