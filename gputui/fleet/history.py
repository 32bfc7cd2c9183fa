"""Bounded per-GPU history: compact ring buffers in two tiers.

Memory is allocated once per GPU and never grows, whatever the run time.
Each metric is stored as small unsigned integers in a stdlib ``array``
(``B`` for percentages and temperatures, ``H`` for watts); the largest value
of the type means "no value", so that a gap in the data stays a gap in a
chart rather than turning into 0. Values are rounded and clamped into range.

Two tiers per metric:

* fine: one slot per sample, :data:`FINE_SAMPLES` slots (10 min at 1 s);
* coarse: one slot per :data:`ROLLUP` samples, the mean of the values that
  were present in them, :data:`COARSE_SAMPLES` slots (1 h at 1 s).

The coarse tier is rolled up as samples arrive, from running sums, with no
re-scan. :meth:`GpuHistory.series` maps a span in seconds to slots through
the host's sample interval and picks the finest tier that covers it.
"""

from __future__ import annotations

import math
from array import array

METRICS = ("util_pct", "mem_pct", "temp_c", "power_w")
METRIC_TYPECODES = ("B", "B", "B", "H")  # same order as METRICS
FINE_SAMPLES = 600  # 10 min at 1 s
COARSE_SAMPLES = 360  # 1 h at 1 s, one slot per ROLLUP samples
ROLLUP = 10

_INDEX = {m: i for i, m in enumerate(METRICS)}
_UNSIGNED = frozenset("BHILQ")
_EPS = 1e-9  # so that 600 / 0.1 (= 6000.000000000001) is 6000 slots, not 6001


class Ring:
    """Fixed-size ring of unsigned integers, typed by ``array`` typecode.

    The largest value of the type marks a missing value; anything else is
    rounded to the nearest integer and clamped into ``0 .. missing - 1``.
    """

    __slots__ = ("_data", "_head", "_missing", "_top", "count")

    def __init__(self, capacity: int, typecode: str = "B") -> None:
        if typecode not in _UNSIGNED:
            raise ValueError(f"Ring needs an unsigned array typecode ({''.join(sorted(_UNSIGNED))}), not {typecode!r}")
        if capacity < 1:
            raise ValueError(f"Ring capacity must be at least 1, not {capacity}")
        missing = (1 << (8 * array(typecode).itemsize)) - 1
        self._data = array(typecode, [missing]) * capacity
        self._missing = missing
        self._top = missing - 1
        self._head = 0
        self.count = 0

    @property
    def capacity(self) -> int:
        return len(self._data)

    @property
    def typecode(self) -> str:
        return self._data.typecode

    @property
    def nbytes(self) -> int:
        """Bytes of the value buffer itself."""
        return len(self._data) * self._data.itemsize

    def push(self, value: float | None) -> int | None:
        """Store one value (``None`` or NaN: a gap); returns what was stored, ``None`` for a gap.
        (``GpuHistory.push`` writes this out for its four rings, for speed: keep the two in step.)"""
        stored: int | None
        if value is None or value != value:
            stored = None
            code = self._missing
        elif value <= 0:
            stored = code = 0
        elif value >= self._top:
            stored = code = self._top
        else:
            stored = code = int(value + 0.5)
        data = self._data
        head = self._head
        data[head] = code
        head += 1
        self._head = 0 if head == len(data) else head
        if self.count < len(data):
            self.count += 1
        return stored

    def values(self, last: int | None = None) -> list[float | None]:
        """The newest ``last`` values (all by default), oldest first; gaps as ``None``."""
        n = self.count if last is None else max(0, min(last, self.count))
        if n == 0:
            return []
        data = self._data
        head = self._head
        raw = data[head - n : head] if n <= head else data[len(data) - (n - head) :] + data[:head]
        missing = self._missing
        return [None if v == missing else float(v) for v in raw]

    def latest(self) -> float | None:
        if self.count == 0:
            return None
        v = self._data[self._head - 1]  # head 0 reads index -1: the last slot
        return None if v == self._missing else float(v)


class GpuHistory:
    """Fine and coarse rings for each of :data:`METRICS`, for one GPU."""

    __slots__ = ("_n", "_sums", "_valid", "coarse", "fine", "interval_s", "rollup")

    def __init__(
        self,
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
        self.fine = tuple(Ring(fine_samples, tc) for tc in METRIC_TYPECODES)
        self.coarse = tuple(Ring(coarse_samples, tc) for tc in METRIC_TYPECODES)
        self._sums = [0, 0, 0, 0]  # of the stored fine values in the open coarse slot
        self._valid = [0, 0, 0, 0]  # how many of them were present
        self._n = 0  # samples in the open coarse slot

    def push(
        self,
        util_pct: float | None,
        mem_pct: float | None,
        temp_c: float | None,
        power_w: float | None,
    ) -> None:
        """One sample: into the fine tier, and into the coarse tier every ``rollup`` samples.

        Each fine ring's ``push`` is written out here rather than called: this runs for every GPU of
        every sample (8,192 times a second at 1,024 hosts), and the calls were half its cost."""
        sums = self._sums
        valid = self._valid
        fine = self.fine
        for i, value in enumerate((util_pct, mem_pct, temp_c, power_w)):
            ring = fine[i]
            if value is None or value != value:
                code = ring._missing
            else:
                top = ring._top
                code = 0 if value <= 0 else top if value >= top else int(value + 0.5)
                sums[i] += code
                valid[i] += 1
            data = ring._data
            head = ring._head
            data[head] = code
            head += 1
            size = len(data)
            ring._head = 0 if head == size else head
            if ring.count < size:
                ring.count += 1
        self._n += 1
        if self._n >= self.rollup:
            for i, ring in enumerate(self.coarse):
                k = valid[i]
                ring.push(sums[i] / k if k else None)
                sums[i] = 0
                valid[i] = 0
            self._n = 0

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
    """Exact bytes of the value arrays of ``gpus`` GPU histories (object overhead not included)."""
    per_slot = sum(array(tc).itemsize for tc in METRIC_TYPECODES)
    return gpus * per_slot * (fine_samples + coarse_samples)
