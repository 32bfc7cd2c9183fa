"""How one GPU reads at a glance: utilisation, memory and heat in five cells.

Shared by the overview and the host screen, so a hot GPU looks hot
everywhere: the colour of the figure is the temperature's distance to that
GPU's own slowdown threshold, not a fixed number.
"""

from __future__ import annotations

from rich.style import Style

from gputui.frames import GpuSample, GpuStatic
from gputui.ui.palette import Palette

BARS = " ▁▂▃▄▅▆▇█"
HOT_MARGIN_C = 5


def heat_style(gpu: GpuSample, static: GpuStatic | None, pal: Palette) -> Style:
    if gpu.temp_c is None:
        return pal.dim
    slowdown = static.temp_slowdown_c if static else None
    if slowdown is None:
        slowdown = 85
    if gpu.temp_c >= slowdown or (gpu.throttle and any("thermal" in r for r in gpu.throttle)):
        return pal.bad
    if gpu.temp_c >= slowdown - HOT_MARGIN_C:
        return pal.warn
    return pal.ok


def mem_bar(gpu: GpuSample) -> str:
    pct = gpu.mem_pct
    if pct is None:
        return "?"
    return BARS[min(len(BARS) - 1, round(pct / 100 * (len(BARS) - 1)))]


def gpu_cell(gpu: GpuSample, static: GpuStatic | None, pal: Palette) -> list[tuple[str, Style]]:
    """Five columns: utilisation (3), memory bar (1), space."""
    if gpu.lost:
        return [("LST", pal.bad), ("!", pal.bad), (" ", pal.text)]
    util = "n/a" if gpu.util_pct is None else f"{gpu.util_pct:>3d}"
    return [(util, heat_style(gpu, static, pal)), (mem_bar(gpu), pal.accent), (" ", pal.text)]
