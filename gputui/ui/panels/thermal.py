"""Tab 2, Thermal: how close each GPU is to its own limits.

Temperatures are read against that GPU's slowdown and shutdown thresholds
(from its hello), not a fixed number, and the margin is shown in degrees so
that "3 °C from slowdown" reads the same on any board. Colour goes by
margin: at or past the threshold is an error, within 5 °C a warning.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from gputui.frames import GpuSample, GpuStatic
from gputui.render import fmt, throttle_words
from gputui.ui.panels.base import HostPanel, HostView
from gputui.ui.widgets.heatmap import NEAR_SLOWDOWN_C as HOT_MARGIN_C
from gputui.ui.widgets.table_sync import Cell, sync_rows

# Short headers and cells: at 80 columns all but the throttle reasons fit without scrolling sideways.
COLUMNS = (
    "GPU",
    "Temp",
    "Slowdown",
    "Shutdown",
    "Mem temp",
    "Power/limit W",
    "Fan",
    "SM MHz",
    "Mem MHz",
    "Throttle reasons",
)
THERMAL_REASONS = ("sw_thermal_slowdown", "hw_thermal_slowdown", "hw_slowdown")


def margin_style(margin: int | None, view: HostView) -> Style:
    """Error at or past the threshold, warning within HOT_MARGIN_C, else fine."""
    pal = view.pal
    if margin is None or view.stale:
        return pal.dim
    if margin <= 0:
        return pal.bad
    if margin <= HOT_MARGIN_C:
        return pal.warn
    return pal.ok


def against(temp: int | None, limit: int | None, view: HostView) -> Text:
    """``89 °C (+5)``: a threshold and how far ``temp`` is below it."""
    if limit is None:
        return Text("N/A", style=view.pal.dim, justify="right")
    if temp is None:
        return Text(f"{limit}{view.deg} (N/A)", style=view.pal.dim, justify="right")
    margin = limit - temp
    return Text(f"{limit}{view.deg} ({margin:+d})", style=margin_style(margin, view), justify="right")


def power_cell(g: GpuSample, view: HostView) -> Text:
    if g.power_w is None:
        return Text("N/A", style=view.pal.dim, justify="right")
    if not g.power_limit_w:
        return Text(f"{g.power_w:.0f}/N/A", justify="right")
    pct = 100.0 * g.power_w / g.power_limit_w
    style = view.pal.dim if view.stale else view.pal.warn if pct >= 95 else view.pal.text
    return Text(f"{g.power_w:.0f}/{g.power_limit_w:.0f} {pct:3.0f}%", style=style, justify="right")


def throttle_cell(g: GpuSample, view: HostView) -> Text:
    pal = view.pal
    reasons = g.throttle
    if view.stale:
        style = pal.dim
    elif reasons and any(r in THERMAL_REASONS for r in reasons):
        style = pal.bad
    elif reasons:
        style = pal.warn
    else:
        style = pal.dim
    return Text(throttle_words(reasons), style=style)


class ThermalPanel(HostPanel):
    def compose(self) -> ComposeResult:
        # The GPU column stays put while the others scroll sideways.
        yield DataTable(id="temps", cursor_type="row", zebra_stripes=True, fixed_columns=1)

    def on_mount(self) -> None:
        self.query_one("#temps", DataTable).add_columns(*COLUMNS)

    def show(self, view: HostView) -> None:
        rows = {str(g.index): self.row(g, view.record.static(g.index), view) for g in view.gpus()}
        sync_rows(self.query_one("#temps", DataTable), rows)

    def row(self, g: GpuSample, s: GpuStatic | None, view: HostView) -> tuple[Cell, ...]:
        pal = view.pal
        if g.lost:
            lost = Text("LOST", style=pal.bad)
            return (str(g.index), lost, "", "", "", "", "", "", "", Text("fallen off the bus: no data", style=pal.bad))
        slowdown = s.temp_slowdown_c if s else None
        shutdown = s.temp_shutdown_c if s else None
        temp_margin = None if g.temp_c is None or slowdown is None else slowdown - g.temp_c
        temp_style = margin_style(temp_margin, view)
        if g.throttle and any(r in THERMAL_REASONS for r in g.throttle) and not view.stale:
            temp_style = pal.bad
        text = pal.dim if view.stale else pal.text

        def num(value: str) -> Text:
            return Text(value, style=text, justify="right")

        return (
            str(g.index),
            Text(fmt(g.temp_c, "{}" + view.deg), style=temp_style, justify="right"),
            against(g.temp_c, slowdown, view),
            against(g.temp_c, shutdown, view),
            self.mem_temp(g, slowdown, view),
            power_cell(g, view),
            num(fmt(g.fan_pct, "{}%")),
            num(fmt(g.sm_clock_mhz, "{}")),
            num(fmt(g.mem_clock_mhz, "{}")),
            throttle_cell(g, view),
        )

    @staticmethod
    def mem_temp(g: GpuSample, slowdown: int | None, view: HostView) -> Text:
        """Memory temperature and its distance to the GPU's slowdown threshold.

        The hello carries no memory-specific threshold, so the GPU's own is
        the yardstick; HBM is rated a few degrees higher than the core.
        """
        if g.mem_temp_c is None:
            return Text("N/A", style=view.pal.dim, justify="right")
        if slowdown is None:
            return Text(f"{g.mem_temp_c}{view.deg}", justify="right")
        margin = slowdown - g.mem_temp_c
        return Text(f"{g.mem_temp_c}{view.deg} ({margin:+d})", style=margin_style(margin, view), justify="right")
