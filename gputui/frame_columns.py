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
(:func:`columns_after`: only the fields the delta names are read again;
gputui/frame_decoder.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


# Each column's field of ``GpuSample``, in the columns' order.
FIELDS = tuple("index" if name == "indices" else name for name in GpuColumns._fields)
# Where each field a delta can change is (not ``index``: a delta names each GPU by it, never changes it).
PLACES = {name: place for place, name in enumerate(FIELDS) if name != "index"}
CONTAINER_FIELDS = frozenset(("throttle", "field_errors", "ecc", "remapped_rows", "retired_pages", "nvlink"))
_EVERY_FIELD = attrgetter(*FIELDS)
_ONE_FIELD = {name: attrgetter(name) for name in PLACES}
NO_GPUS = GpuColumns(*((),) * len(FIELDS))


def columns_of(gpus: Sequence[GpuSample], untrack: Untrack | None = None) -> GpuColumns:
    """Every field of ``gpus`` read once. With ``untrack``, the columns are out of the collector's
    walk when it returns (as the frames they come from are: gputui/frame_untracking.py)."""
    if not gpus:
        return NO_GPUS
    columns = tuple.__new__(GpuColumns, zip(*map(_EVERY_FIELD, gpus), strict=True))
    return _untracked(columns, CONTAINER_FIELDS, untrack)


def columns_after(
    before: GpuColumns, gpus: Sequence[GpuSample], changed: Iterable[str], untrack: Untrack | None = None
) -> GpuColumns:
    """The columns of ``gpus``, which differ from those ``before`` was made of only in the fields
    named in ``changed`` (names that are not columns are passed over): every other column is
    ``before``'s own tuple."""
    remade = PLACES.keys() & changed
    if not remade:
        return before
    columns = list(before)
    for name in remade:
        columns[PLACES[name]] = tuple(map(_ONE_FIELD[name], gpus))
    return _untracked(tuple.__new__(GpuColumns, columns), CONTAINER_FIELDS & remade, untrack)


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
