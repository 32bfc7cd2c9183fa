"""The overview's heat map: one cell per GPU, coloured by the metric in focus.

Utilisation, memory and power are shaded from the background to the theme's
primary colour in five steps; temperature is judged against each GPU's own
slowdown threshold (ok, near, at or over), since 80 °C is fine on one board
and a problem on another.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from textual.app import App
from textual.color import Color

from gputui.frame_columns import GpuColumns
from gputui.frames import GpuStatic

METRICS = ("util", "mem", "temp", "power")
METRIC_TITLES = {"util": "utilisation %", "mem": "memory used %", "temp": "temperature °C", "power": "power % of cap"}
ASCII_TITLES = {**METRIC_TITLES, "temp": "temperature C"}
DEFAULT_SLOWDOWN_C = 85
NEAR_SLOWDOWN_C = 5
CELL_W = 4


def metric_value(metric: str, c: GpuColumns, place: int) -> float | None:
    """The value of ``metric`` for the GPU at ``place`` of a host's columns (gputui/frame_columns.py):
    the overview draws from them, so that no GPU's model is made for a line on screen."""
    if metric == "util":
        return c.util_pct[place]
    if metric == "temp":
        return c.temp_c[place]
    if metric == "mem":
        used, total = c.mem_used_mib[place], c.mem_total_mib[place]
        return None if used is None or not total else 100.0 * used / total  # as GpuSample.mem_pct
    power, limit = c.power_w[place], c.power_limit_w[place]
    return None if power is None or not limit else 100.0 * power / limit


def level_of(metric: str, value: float, throttle: list[str] | None, static: GpuStatic | None) -> int:
    """0..4: how strongly to colour a GPU's cell showing ``value`` of ``metric`` (``throttle``: its
    clock-event reasons, which turn a temperature the hottest colour)."""
    if metric == "temp":
        slowdown = (static.temp_slowdown_c if static else None) or DEFAULT_SLOWDOWN_C
        if value >= slowdown or (throttle and any("thermal" in r for r in throttle)):
            return 4
        if value >= slowdown - NEAR_SLOWDOWN_C:
            return 3
        return 1 if value >= 50 else 0
    return 0 if value <= 0 else 1 + min(3, int(value // 25))


@dataclass(frozen=True)
class Ramp:
    """Cell styles by level, from the theme in use."""

    steps: tuple[Style, ...]
    temp: tuple[Style, ...]
    lost: Style
    missing: Style
    stale: Style

    @classmethod
    def of(cls, app: App[object]) -> Ramp:
        t = app.current_theme
        bg = Color.parse(t.background or ("#000000" if t.dark else "#ffffff"))
        primary = Color.parse(t.primary)
        steps = []
        for i in range(5):
            shade = bg.blend(primary, 0.12 + 0.22 * i)
            steps.append(Style(bgcolor=shade.hex, color=_ink(shade)))
        ok = Color.parse(t.success or "green")
        warn = Color.parse(t.warning or "yellow")
        bad = Color.parse(t.error or "red")
        temp = [bg.blend(ok, 0.25), bg.blend(ok, 0.55), bg.blend(ok, 0.55), warn, bad]
        fg = Color.parse(t.foreground or ("#e0e0e0" if t.dark else "#202020"))
        return cls(
            steps=tuple(steps),
            temp=tuple(Style(bgcolor=c.hex, color=_ink(c), bold=i >= 3) for i, c in enumerate(temp)),
            lost=Style(bgcolor=bad.hex, color=_ink(bad), bold=True),
            missing=Style(color=fg.hex, dim=True),
            stale=Style(color=fg.hex, dim=True),
        )


def _ink(background: Color) -> str:
    return "#000000" if background.brightness > 0.55 else "#ffffff"


def cell(metric: str, c: GpuColumns, place: int, static: GpuStatic | None, ramp: Ramp, stale: bool) -> tuple[str, Style]:
    """Text (CELL_W wide, ASCII) and style of the cell of the GPU at ``place`` of a host's columns."""
    if c.lost[place]:
        return "LST ", ramp.lost
    value = metric_value(metric, c, place)
    if value is None:
        return " -- ", ramp.missing
    text = f"{min(999, round(value)):>3} "
    if stale:
        return text, ramp.stale
    return text, (ramp.temp if metric == "temp" else ramp.steps)[level_of(metric, value, c.throttle[place], static)]
