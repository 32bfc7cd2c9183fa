"""What every host-screen panel shares: the view it draws from, and ASCII care.

The host screen builds one :class:`HostView` per tick and hands it to the
visible panel only. Panels never read the clock or the app's theme on their
own, so a tick draws every cell from the same instant and the same colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual.containers import Vertical
from textual.scrollbar import ScrollBarRender
from textual.widget import Widget

from gputui.fleet.store import HostRecord
from gputui.frames import GpuSample
from gputui.slurm.model import SlurmJob, SlurmView
from gputui.ui.widgets.palette import Palette, ascii_mode

BARS = " ▁▂▃▄▅▆▇█"
ASCII_BARS = " .:-=+*#"


@dataclass(frozen=True)
class HostView:
    """One host as of one tick: what a panel needs to draw itself."""

    record: HostRecord
    now: float  # the store's clock (monotonic)
    stale: bool  # the host is not live: numbers are old and drawn dim
    pal: Palette
    ascii: bool  # Linux console: draw nothing outside ASCII
    wall: float  # the time of day (a replay's: the recording's), for how long processes have run
    slurm: SlurmView | None = None  # the site's Slurm ([slurm]): its jobs on these GPUs, the node's state

    def slurm_job(self, gpu: int) -> SlurmJob | None:
        """The Slurm job given this GPU (by its GRES index), where Slurm is read."""
        return self.slurm.job_on(self.record.name, gpu) if self.slurm is not None else None

    @property
    def deg(self) -> str:
        """Degrees Celsius as the terminal can show it."""
        return " C" if self.ascii else " °C"

    def gpus(self) -> list[GpuSample]:
        return self.record.gpus()


def sparkline(values: Sequence[float | None], ascii: bool, width: int) -> str:
    """A percentage series as one character a sample, newest on the right.

    The blank is kept for gaps only (a missing value is not 0 %), so the bars
    start one step up: 0 % draws as the lowest bar, 100 % as the full one.
    """
    bars = ASCII_BARS if ascii else BARS
    top = len(bars) - 1
    out = []
    for v in values[-width:]:
        if v is None:
            out.append(" ")
        else:
            level = 1 + round(min(100.0, max(0.0, v)) / 100.0 * (top - 1))
            out.append(bars[level])
    return "".join(out).rjust(width)


class AsciiScrollBarRender(ScrollBarRender):
    """Scrollbar thumbs in whole cells: the default draws eighths with block elements."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "] * 8
    HORIZONTAL_BARS: ClassVar[list[str]] = [" "] * 8


def asciify_scrollbars(widget: Widget) -> None:
    """Swap this widget's scrollbars for ones drawn with spaces only."""
    # Textual documents replacing the renderer on one scrollbar instance.
    widget.vertical_scrollbar.renderer = AsciiScrollBarRender  # type: ignore[misc]
    widget.horizontal_scrollbar.renderer = AsciiScrollBarRender  # type: ignore[misc]


class HostPanel(Vertical):
    """A tab of the host screen; subclasses draw a :class:`HostView`."""

    def show(self, view: HostView) -> None:
        """Redraw from ``view``; called once a second while the tab is visible."""
        raise NotImplementedError

    def focus_main(self) -> None:
        """Focus the widget the panel's keys act on (its table)."""
        for widget in self.query("DataTable"):
            widget.focus()
            return

    def on_mount(self) -> None:
        if ascii_mode(self.app):
            for widget in self.query("DataTable"):
                asciify_scrollbars(widget)
