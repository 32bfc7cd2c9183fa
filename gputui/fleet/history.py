"""Fixed-size numeric ring buffers: bounded memory whatever the fleet size.

One ``array('f')`` per metric and GPU, allocated once; ``None`` is stored as
NaN so that a gap in the data stays a gap in a chart.
"""

from __future__ import annotations

import math
from array import array

METRICS = ("util_pct", "mem_pct", "temp_c", "power_w")


class Ring:
    __slots__ = ("_data", "_head", "count")

    def __init__(self, capacity: int) -> None:
        self._data = array("f", [math.nan]) * capacity
        self._head = 0
        self.count = 0

    @property
    def capacity(self) -> int:
        return len(self._data)

    def push(self, value: float | None) -> None:
        self._data[self._head] = math.nan if value is None else value
        self._head = (self._head + 1) % len(self._data)
        self.count = min(self.count + 1, len(self._data))

    def values(self) -> list[float | None]:
        """Oldest first; gaps as ``None``."""
        n = len(self._data)
        start = (self._head - self.count) % n
        out: list[float | None] = []
        for i in range(self.count):
            v = self._data[(start + i) % n]
            out.append(None if math.isnan(v) else v)
        return out


class GpuHistory:
    """One ring per metric for one GPU."""

    __slots__ = ("rings",)

    def __init__(self, capacity: int) -> None:
        self.rings = {m: Ring(capacity) for m in METRICS}

    def push(self, values: dict[str, float | None]) -> None:
        for metric, ring in self.rings.items():
            ring.push(values.get(metric))
