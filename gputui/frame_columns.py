"""A host's last sample by field: one tuple per field, a value per GPU, in the sample's order.

The readers that go over every host every second (its history's new row,
the health rules' look at whether anything is wrong) want a few fields of
all of a host's GPUs, not each GPU whole: a host's temperatures as one tuple
is one ``max`` in C where eight GPU models were eight trips through Python.
And a column no change touched is the same tuple as the sample before's, so
a reader that judged it before can tell by identity that nothing is new
(the error counters, the ECC and remapping state, the clock-event reasons:
nearly every column but the four that move every second).

Made two ways, equal by construction (tests/test_frame_columns.py checks
them against each other over a demo fleet's frames): from a sample's GPUs
(:func:`columns_of`: every field read once, for a keyframe or a source
that sends whole samples), or from the columns before and a delta's changes
(:func:`columns_after`: only the fields the delta names are remade, from
the values it carries; gputui/frame_decoder.py). So a host whose GPUs no
reader asks for whole never has their models made (gputui/frame_later.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

from gputui.frame_untracking import Untrack, is_tracked
from gputui.frames import GpuSample


class GpuColumns(NamedTuple):
    """Each field a tuple of the host's GPUs' values (``indices``: their indices, which GPU each is)."""

    indices: tuple[int, ...]
    util_pct: tuple[int | None, ...]
    mem_used_mib: tuple[int | None, ...]
    mem_total_mib: tuple[int | None, ...]
    temp_c: tuple[int | None, ...]
    power_w: tuple[float | None, ...]
    lost: tuple[bool, ...]
    persistence_mode: tuple[bool | None, ...]
    pcie_replays: tuple[int | None, ...]
    # Fields whose values are containers (lists, dicts, models): see ``_untracked``.
    throttle: tuple[Any, ...]
    field_errors: tuple[Any, ...]
    ecc: tuple[Any, ...]
    remapped_rows: tuple[Any, ...]
    retired_pages: tuple[Any, ...]
    nvlink: tuple[Any, ...]
    power_limit_w: tuple[float | None, ...]  # the overview's power cells are a share of it
    # Whether each GPU runs any process: what the overview counts as busy, which would otherwise
    # ask every GPU's process list, a list a delta remakes whenever a process's figures move.
    running: tuple[bool, ...]


# Each column's field of ``GpuSample``, in the columns' order (all but the last, ``running``).
FIELDS = tuple("index" if name == "indices" else name for name in GpuColumns._fields[:-1])
# Where the value of each field a delta can change goes (not ``index``: a delta names each GPU by
# it, never changes it), and how a delta's value becomes the column's where it is not as sent.
PLACES = {name: place for place, name in enumerate(FIELDS) if name != "index"} | {"processes": len(FIELDS)}
AS_SENT: Mapping[str, Callable[[Any], Any]] = {"lost": bool, "processes": bool}  # ``null``: not lost, none running
CONTAINER_FIELDS = frozenset(("throttle", "field_errors", "ecc", "remapped_rows", "retired_pages", "nvlink"))
CONTAINER_PLACES = frozenset(PLACES[name] for name in CONTAINER_FIELDS)
_EVERY_FIELD = attrgetter(*FIELDS)
NO_GPUS = GpuColumns(*((),) * len(GpuColumns._fields))


def columns_of(gpus: Sequence[GpuSample], untrack: Untrack | None = None) -> GpuColumns:
    """Every field of ``gpus`` read once. With ``untrack``, the columns are out of the collector's
    walk when it returns (as the frames they come from are: gputui/frame_untracking.py)."""
    if not gpus:
        return NO_GPUS
    running = tuple(bool(g.processes) for g in gpus)
    columns = tuple.__new__(GpuColumns, (*zip(*map(_EVERY_FIELD, gpus), strict=True), running))
    return _untracked(columns, CONTAINER_FIELDS, untrack)


def columns_after(
    before: GpuColumns, updates: Iterable[tuple[int, Mapping[str, Any], object]], untrack: Untrack | None = None
) -> GpuColumns:
    """The columns after a delta: ``updates`` is, for each GPU it changes, the GPU's place, its
    new values by field, as its model will hold them (a container already the shared one the model
    will hold; names that are not columns are passed over), and anything else (the decoder's
    process changes). Every column none of them names is ``before``'s own tuple.

    One walk of the values sent, each column a list copied once from the one before: a delta
    changes four or five columns of a busy host, the same ones on every GPU."""
    changed: dict[int, list[Any]] = {}
    for place, update, _ in updates:
        for name, value in update.items():
            column = PLACES.get(name)
            if column is None:
                continue
            values = changed.get(column)
            if values is None:
                values = changed[column] = list(before[column])
            values[place] = AS_SENT[name](value) if name in AS_SENT else value
    if not changed:
        return before
    columns = list(before)
    for column, values in changed.items():
        columns[column] = tuple(values)
    made = () if CONTAINER_PLACES.isdisjoint(changed) else [name for name in CONTAINER_FIELDS if PLACES[name] in changed]
    return _untracked(tuple.__new__(GpuColumns, columns), made, untrack)


def _untracked(columns: GpuColumns, made: Iterable[str], untrack: Untrack | None) -> GpuColumns:
    """``columns`` out of the collector's walk, with the columns named in ``made`` that hold containers.

    A tuple of numbers the collector leaves by itself the first time it sees one; a tuple that
    holds a list, a dict or a model it keeps walking, however long it lives, and such a column
    is kept from one sample to the next for as long as it does not change. The columns object
    itself is a tuple of a class of its own, which the collector never leaves by itself."""
    if untrack is not None:
        untrack(id(columns))
        for name in made:
            column = columns[PLACES[name]]
            if is_tracked(column):
                untrack(id(column))
    return columns
