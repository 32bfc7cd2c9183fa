"""The overview's columns: full width, or narrow enough for an 80-column terminal.

Narrow, the host column is as wide as the longest name, the states are
shorter words and the memory and power totals are left out (the heat map's
``m`` shows both per GPU), so the hottest GPU and what the ledger holds
stay in sight without scrolling sideways.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gputui.fleet.store import HostState
from gputui.ui.widgets.heatmap import CELL_W

NAME_W = 14
STATE_W = 11
AGE_W = 5
SUMMARY_W = 31  # busy, memory, hottest GPU, power, and room for the start of a ledger note
NARROW_STATE_W = 6
NARROW_AGE_W = 4
NARROW_SUMMARY_W = 26  # busy, hottest GPU, and room for a ledger note
NARROW_STATES = {HostState.CONNECTING: "conn"}


@dataclass(frozen=True)
class Columns:
    name_w: int = NAME_W
    state_w: int = STATE_W
    age_w: int = AGE_W
    narrow: bool = False

    @classmethod
    def fitting(cls, width: int, gpus: int, names: Iterable[str]) -> Columns:
        """The full columns where they fit in ``width`` (0: not known yet), else the narrow ones
        (``names`` is read only then, so a wide screen does not walk the fleet for it)."""
        full = cls()
        if not width or full.width(gpus) <= width:
            return full
        longest = max((len(n) for n in names), default=4)
        return cls(min(NAME_W, max(5, longest + 1)), NARROW_STATE_W, NARROW_AGE_W, narrow=True)

    def width(self, gpus: int) -> int:
        summary = NARROW_SUMMARY_W if self.narrow else SUMMARY_W
        return 2 + self.name_w + self.state_w + self.age_w + self.gap + gpus * CELL_W + 1 + summary

    @property
    def gap(self) -> int:
        return 1 if self.narrow else 2

    def state_word(self, state: HostState, reduced: bool) -> str:
        """``reduced``: read through nvidia-smi, with fewer fields."""
        if not self.narrow:
            return state.value + (" (smi)" if reduced else "")
        if reduced and state is HostState.LIVE:
            return "smi"
        return NARROW_STATES.get(state, state.value)

    def header(self, gpus: int, metric_title: str) -> str:
        width = max(gpus, 1) * CELL_W + 1
        label = f"GPUs: {metric_title}"
        cells = label.ljust(width) if len(label) < width else (label[: width - 1] + " ")
        head = f"  {'HOST':<{self.name_w}}{'STATE':<{self.state_w}}{'AGE':>{self.age_w}}{' ' * self.gap}{cells}"
        if self.narrow:
            return f"{head}{'BUSY':>5} {'TMAX':>6}"
        return f"{head}{'BUSY':>5} {'MEM':>5} {'TMAX':>6} {'POWER':>7}"
