"""Bounded GPU history: compact ring buffers in two tiers, one row per sample of a host.

Memory is allocated once per host and never grows, whatever the run time.
Each metric is stored as small unsigned integers in a stdlib ``array``
(``B`` for percentages and temperatures, ``H`` for watts); the largest value
of the type means "no value", so that a gap in the data stays a gap in a
chart rather than turning into 0. Values are rounded and clamped into range.

Two tiers per metric:

* fine: one slot per sample, :data:`FINE_SAMPLES` slots (10 min at 1 s);
* coarse: one slot per :data:`ROLLUP` samples, the mean of the values that
  were present in them, :data:`COARSE_SAMPLES` slots (1 h at 1 s).

A host's GPUs are sampled together, so each tier of a metric is one array
for the whole host (:class:`Tier`): a row per sample, a column per GPU. A
sample is four row writes, one per metric, whatever the number of GPUs;
kept GPU by GPU it was 32 ring writes for an 8-GPU host and, at 1,024 hosts,
5 to 7 % of a core. A coarse slot is the mean of the last :data:`ROLLUP`
rows of the fine tier, read back when it closes. A GPU missing from a
sample is a gap in its column; one the host did not have before gets a
column of its own, with gaps before it came.

Readers see one GPU at a time (:class:`GpuHistory`, :class:`Ring`: views of
a column). :meth:`GpuHistory.series` maps a span in seconds to slots through
the host's sample interval and picks the finest tier that covers it.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gputui.frame_columns import GpuColumns

METRICS = ("util_pct", "mem_pct", "temp_c", "power_w")
METRIC_TYPECODES = ("B", "B", "B", "H")  # same order as METRICS
METRIC_WHOLE = (True, False, True, False)  # sent as whole numbers (GpuSample's int fields); same order
FINE_SAMPLES = 600  # 10 min at 1 s
COARSE_SAMPLES = 360  # 1 h at 1 s, one slot per ROLLUP samples
ROLLUP = 10
# The most GPUs a host keeps history for. Servers have 8 or 16; a column is added by copying the
# host's arrays, so an agent gone wrong that named a new GPU each sample would cost more each time.
# GPUs past this are shown live, with no chart.
MAX_COLUMNS = 256

_INDEX = {m: i for i, m in enumerate(METRICS)}
_UNSIGNED = frozenset("BHILQ")
_EPS = 1e-9  # so that 600 / 0.1 (= 6000.000000000001) is 6000 slots, not 6001


Fields = Sequence[float | None]  # one field's values, one per GPU of the host


class Sampled(Protocol):
    """What a GPU's sample gives the history (``gputui.frames.GpuSample``)."""

    @property
    def index(self) -> int: ...
    @property
    def util_pct(self) -> int | None: ...
    @property
    def mem_used_mib(self) -> int | None: ...
    @property
    def mem_total_mib(self) -> int | None: ...
    @property
    def temp_c(self) -> int | None: ...
    @property
    def power_w(self) -> float | None: ...


class Tier:
    """One metric's ring of rows, ``width`` values a row (one per GPU), typed by ``array`` typecode.

    The largest value of the type marks a missing value; anything else is
    rounded to the nearest integer and clamped into ``0 .. missing - 1``.
    ``rows`` may exceed ``capacity`` (a fine tier keeps at least the rows a
    coarse slot is rolled up from); readers never see more than ``capacity``.
    """

    __slots__ = ("capacity", "count", "data", "head", "missing", "rows", "top", "typecode", "whole", "width")

    def __init__(self, capacity: int, typecode: str = "B", width: int = 1, rows: int = 0, *, whole: bool = False) -> None:
        if typecode not in _UNSIGNED:
            raise ValueError(f"Ring needs an unsigned array typecode ({''.join(sorted(_UNSIGNED))}), not {typecode!r}")
        if capacity < 1:
            raise ValueError(f"Ring capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self.rows = max(capacity, rows)
        self.typecode = typecode
        self.missing = (1 << (8 * array(typecode).itemsize)) - 1
        self.top = self.missing - 1
        self.width = width
        self.whole = whole  # its values come as whole numbers (a float among them is stored all the same)
        self.data = array(typecode, [self.missing]) * (self.rows * width)
        self.head = 0  # the row the next sample goes to
        self.count = 0  # rows written, at most ``rows``

    def codes(self, values: Sequence[float | None]) -> array[int]:
        """The stored form of one value per column: rounded, clamped, a gap for None or NaN.

        Nearly every row is all in range and present: it is stored in one go (whole numbers as
        they are, others rounded half up), and anything else (None, NaN, out of range, the
        "missing" value itself) makes that fail and goes value by value. The one-go path was
        a third of the cost of each row."""
        try:
            given: Any = values  # None among them, or floats where whole numbers go, raise here
            codes: array[int] = array(self.typecode, given if self.whole else [int(v + 0.5) for v in given])
        except (TypeError, ValueError, OverflowError):  # None, a float among whole numbers, NaN, out of range
            return self._codes_one_by_one(values)
        if self.missing in codes:
            return self._codes_one_by_one(values)
        return codes

    def _codes_one_by_one(self, values: Sequence[float | None]) -> array[int]:
        missing, top = self.missing, self.top
        return array(
            self.typecode,
            [missing if v is None or v != v else 0 if v <= 0 else top if v >= top else int(v + 0.5) for v in values],
        )

    def push_row(self, codes: array[int]) -> None:
        width, head = self.width, self.head
        self.data[head * width : (head + 1) * width] = codes
        head += 1
        self.head = 0 if head == self.rows else head
        if self.count < self.rows:
            self.count += 1

    def column(self, slot: int, n: int) -> array[int]:
        """The newest ``n`` stored values of column ``slot`` (at most ``count``), oldest first."""
        data, width, head = self.data, self.width, self.head
        if n <= head:
            return data[(head - n) * width + slot : head * width : width]
        older = data[(self.rows - (n - head)) * width + slot :: width]
        return older + data[slot : head * width : width]

    def last_rows(self, n: int) -> array[int]:
        """The newest ``n`` rows whole (``n`` at most ``rows``), oldest first."""
        data, width, head = self.data, self.width, self.head
        if n <= head:
            return data[(head - n) * width : head * width]
        return data[(self.rows - (n - head)) * width :] + data[: head * width]

    def widen(self) -> None:
        """One more column, a gap in every row so far."""
        old, width = self.data, self.width
        new = array(self.typecode, [self.missing]) * (self.rows * (width + 1))
        for slot in range(width):
            new[slot :: width + 1] = old[slot::width]
        self.data, self.width = new, width + 1


class Ring:
    """One GPU's values of one metric in one tier: a column of a :class:`Tier`, newest last.

    ``Ring(capacity, typecode)`` makes a ring of its own (a tier one column wide) that
    :meth:`push` writes to; a host's rings are written a row at a time by :class:`HostHistory`.
    """

    __slots__ = ("slot", "tier")

    def __init__(self, capacity: int, typecode: str = "B") -> None:
        self.tier = Tier(capacity, typecode)
        self.slot = 0

    @classmethod
    def column_of(cls, tier: Tier, slot: int) -> Ring:
        ring = cls.__new__(cls)
        ring.tier, ring.slot = tier, slot
        return ring

    @property
    def capacity(self) -> int:
        return self.tier.capacity

    @property
    def count(self) -> int:
        return min(self.tier.count, self.tier.capacity)

    @property
    def typecode(self) -> str:
        return self.tier.typecode

    @property
    def nbytes(self) -> int:
        """Bytes of this ring's values (its share of a host's buffer)."""
        return self.tier.rows * self.tier.data.itemsize

    def push(self, value: float | None) -> int | None:
        """Store one value (``None`` or NaN: a gap) in a ring of its own; returns what was stored,
        ``None`` for a gap."""
        tier = self.tier
        if tier.width != 1:
            raise ValueError("a host's ring is written a row at a time (HostHistory.push)")
        codes = tier.codes((value,))
        tier.push_row(codes)
        return None if codes[0] == tier.missing else codes[0]

    def values(self, last: int | None = None) -> list[float | None]:
        """The newest ``last`` values (all by default), oldest first; gaps as ``None``."""
        count = self.count
        n = count if last is None else max(0, min(last, count))
        if n == 0:
            return []
        missing = self.tier.missing
        return [None if v == missing else float(v) for v in self.tier.column(self.slot, n)]

    def latest(self) -> float | None:
        tier = self.tier
        if tier.count == 0:
            return None
        v = tier.data[(tier.head - 1) % tier.rows * tier.width + self.slot]
        return None if v == tier.missing else float(v)


class HostHistory:
    """Fine and coarse tiers for each of :data:`METRICS`, for every GPU of one host."""

    __slots__ = ("_n", "coarse", "fine", "gpus", "indices", "interval_s", "rollup")

    def __init__(
        self,
        indices: Sequence[int],
        interval_s: float = 1.0,
        *,
        fine_samples: int = FINE_SAMPLES,
        coarse_samples: int = COARSE_SAMPLES,
        rollup: int = ROLLUP,
    ) -> None:
        if rollup < 1:
            raise ValueError(f"rollup must be at least 1, not {rollup}")
        self.interval_s = interval_s
        self.rollup = rollup
        indices = list(dict.fromkeys(indices))[:MAX_COLUMNS]  # a GPU sent twice in one sample has one column
        width = len(indices)
        kinds = zip(METRIC_TYPECODES, METRIC_WHOLE, strict=True)
        self.fine = tuple(Tier(fine_samples, tc, width, rows=rollup, whole=whole) for tc, whole in kinds)
        self.coarse = tuple(Tier(coarse_samples, tc, width) for tc in METRIC_TYPECODES)
        self.indices = indices  # each column's GPU index, in column order
        self.gpus: dict[int, GpuHistory] = {index: GpuHistory.column_of(self, slot) for slot, index in enumerate(indices)}
        self._n = 0  # samples in the open coarse slot

    def push(self, gpus: Sequence[Sampled]) -> None:
        """One sample of the host's GPUs: a row of each metric, and a coarse row every ``rollup``."""
        fields = [(g.util_pct, g.mem_used_mib, g.mem_total_mib, g.temp_c, g.power_w) for g in gpus]
        self._push_by_field([g.index for g in gpus], list(zip(*fields, strict=True)) or [()] * 5)  # none: five empty

    def push_columns(self, columns: GpuColumns) -> None:
        """``push`` for a sample read by field (gputui/frame_columns.py): its columns taken as they are."""
        c = columns
        self._push_by_field(c.indices, (c.util_pct, c.mem_used_mib, c.mem_total_mib, c.temp_c, c.power_w))

    def _push_by_field(self, indices: Sequence[int], fields: Sequence[Fields]) -> None:
        """A sample as its GPUs' indices and, per field (util, memory used and total, temperature,
        power), a value per GPU in that order. The memory column is ``GpuSample.mem_pct`` worked
        out here (the property's call was a third of reading the row)."""
        if not indices and not self.indices:
            return  # no GPU yet (a driver that lists none): no rows, so the first GPUs start with no gaps
        if list(indices) != self.indices:
            fields = self._in_column_order(indices, fields)  # a GPU gone from this sample is a gap in its column
        util, used, total, temp, power = fields
        mem = [None if u is None or not t else 100.0 * u / t for u, t in zip(used, total, strict=True)]
        self.push_values((util, mem, temp, power))

    def push_values(self, columns: Sequence[Sequence[float | None]]) -> None:
        """One sample as one value per column of each metric, in :data:`METRICS` order."""
        for tier, values in zip(self.fine, columns, strict=True):
            tier.push_row(tier.codes(values))
        self._n += 1
        if self._n >= self.rollup:
            self._roll_up()
            self._n = 0

    def _in_column_order(self, indices: Sequence[int], fields: Sequence[Fields]) -> list[list[float | None]]:
        """Each field's values in column order, None for a column the sample lacks; a new GPU gets a
        column (up to :data:`MAX_COLUMNS`); a GPU sent twice is taken as last sent."""
        for index in indices:
            if index not in self.gpus and len(self.indices) < MAX_COLUMNS:
                self._add_column(index)
        column = {index: slot for slot, index in enumerate(self.indices)}
        out: list[list[float | None]] = [[None] * len(self.indices) for _ in fields]
        for place, index in enumerate(indices):
            slot = column.get(index)
            if slot is not None:
                for values, field in zip(out, fields, strict=True):
                    values[slot] = field[place]
        return out

    def _add_column(self, index: int) -> None:
        for tier in (*self.fine, *self.coarse):
            tier.widen()
        self.gpus[index] = GpuHistory.column_of(self, len(self.indices))
        self.indices.append(index)

    def _roll_up(self) -> None:
        """The coarse row: per column, the mean of the values present in the last ``rollup`` fine rows."""
        n = self.rollup
        for fine, coarse in zip(self.fine, self.coarse, strict=True):
            rows, width, missing = fine.last_rows(n), fine.width, fine.missing
            if missing not in rows:  # no gap: every column's mean of n values
                means: list[float | None] = [sum(rows[slot::width]) / n for slot in range(width)]
            else:
                means = []
                for slot in range(width):
                    present = [v for v in rows[slot::width] if v != missing]
                    means.append(sum(present) / len(present) if present else None)
            coarse.push_row(coarse.codes(means))


class GpuHistory:
    """One GPU's fine and coarse rings for each of :data:`METRICS`: a column of its host's history.

    ``GpuHistory(interval_s)`` makes the history of a GPU on its own (a host of one GPU) that
    :meth:`push` writes to; the store keeps one :class:`HostHistory` per host."""

    __slots__ = ("coarse", "fine", "host")
    fine: tuple[Ring, ...]
    coarse: tuple[Ring, ...]
    host: HostHistory

    def __init__(
        self,
        interval_s: float = 1.0,
        *,
        fine_samples: int = FINE_SAMPLES,
        coarse_samples: int = COARSE_SAMPLES,
        rollup: int = ROLLUP,
    ) -> None:
        host = HostHistory((0,), interval_s, fine_samples=fine_samples, coarse_samples=coarse_samples, rollup=rollup)
        self._read(host, 0)
        host.gpus[0] = self  # the host's one view of its column is this one

    @classmethod
    def column_of(cls, host: HostHistory, slot: int) -> GpuHistory:
        gpu = cls.__new__(cls)
        gpu._read(host, slot)
        return gpu

    def _read(self, host: HostHistory, slot: int) -> None:
        """Become the view of column ``slot`` of ``host``."""
        self.host = host
        self.fine = tuple(Ring.column_of(tier, slot) for tier in host.fine)
        self.coarse = tuple(Ring.column_of(tier, slot) for tier in host.coarse)

    @property
    def interval_s(self) -> float:
        return self.host.interval_s

    @property
    def rollup(self) -> int:
        return self.host.rollup

    def push(
        self,
        util_pct: float | None,
        mem_pct: float | None,
        temp_c: float | None,
        power_w: float | None,
    ) -> None:
        """One sample of a GPU with a history of its own."""
        if len(self.host.indices) != 1:
            raise ValueError("a host's GPUs are written a sample at a time (HostHistory.push)")
        self.host.push_values(((util_pct,), (mem_pct,), (temp_c,), (power_w,)))

    def latest(self, metric: str) -> float | None:
        """The newest value of ``metric`` (``None``: none yet, or missing in the last sample)."""
        return self.fine[_INDEX[metric]].latest()

    def _plan(self, span_s: float) -> tuple[bool, int]:
        """(use the fine tier?, how many slots) for a span in seconds."""
        interval = self.interval_s if self.interval_s > 0 else 1.0  # also catches NaN
        slots = math.ceil(span_s / interval - _EPS)
        if slots <= self.fine[0].capacity:
            return True, slots
        return False, min(math.ceil(span_s / (interval * self.rollup) - _EPS), self.coarse[0].capacity)

    def series(self, metric: str, span_s: float) -> list[float | None]:
        """The last ``span_s`` seconds of ``metric``, oldest first, gaps as ``None``.

        From the fine tier when the span fits in it, else from the coarse tier
        (whose newest slot ends at the last complete group of ``rollup``
        samples); never more points than there are slots filled.
        """
        if not span_s > 0:
            return []
        use_fine, slots = self._plan(span_s)
        ring = (self.fine if use_fine else self.coarse)[_INDEX[metric]]
        return ring.values(slots)

    def step_s(self, span_s: float) -> float:
        """Seconds per point of :meth:`series` for this span (to draw a time axis)."""
        interval = self.interval_s if self.interval_s > 0 else 1.0
        use_fine, _ = self._plan(span_s) if span_s > 0 else (True, 0)
        return interval if use_fine else interval * self.rollup


def history_bytes(gpus: int, *, fine_samples: int = FINE_SAMPLES, coarse_samples: int = COARSE_SAMPLES) -> int:
    """Exact bytes of the value arrays of ``gpus`` GPUs' history (object overhead not included)."""
    per_slot = sum(array(tc).itemsize for tc in METRIC_TYPECODES)
    return gpus * per_slot * (max(fine_samples, ROLLUP) + coarse_samples)
