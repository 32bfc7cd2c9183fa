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

from gputui.frames import GpuSample, GpuStatic

METRICS = ("util", "mem", "temp", "power")
METRIC_TITLES = {"util": "utilisation %", "mem": "memory used %", "temp": "temperature °C", "power": "power % of cap"}
ASCII_TITLES = {**METRIC_TITLES, "temp": "temperature C"}
DEFAULT_SLOWDOWN_C = 85
NEAR_SLOWDOWN_C = 5
CELL_W = 4


def metric_value(metric: str, gpu: GpuSample) -> float | None:
    if metric == "util":
        return gpu.util_pct
    if metric == "mem":
        return gpu.mem_pct
    if metric == "temp":
        return gpu.temp_c
    if gpu.power_w is None or not gpu.power_limit_w:
        return None
    return 100.0 * gpu.power_w / gpu.power_limit_w


def level(metric: str, gpu: GpuSample, static: GpuStatic | None) -> int:
    """0..4: how strongly to colour the cell; -1 when there is no value."""
    value = metric_value(metric, gpu)
    return -1 if value is None else level_of(metric, value, gpu, static)


def level_of(metric: str, value: float, gpu: GpuSample, static: GpuStatic | None) -> int:
    """``level`` of the GPU's ``value`` of ``metric``, already read."""
    if metric == "temp":
        slowdown = (static.temp_slowdown_c if static else None) or DEFAULT_SLOWDOWN_C
        if value >= slowdown or (gpu.throttle and any("thermal" in r for r in gpu.throttle)):
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


def cell(metric: str, gpu: GpuSample, static: GpuStatic | None, ramp: Ramp, stale: bool) -> tuple[str, Style]:
    """Text (CELL_W wide, ASCII) and style of one GPU's cell."""
    if gpu.lost:
        return "LST ", ramp.lost
    value = metric_value(metric, gpu)
    if value is None:
        return " -- ", ramp.missing
    text = f"{min(999, round(value)):>3} "
    if stale:
        return text, ramp.stale
    return text, (ramp.temp if metric == "temp" else ramp.steps)[level_of(metric, value, gpu, static)]
