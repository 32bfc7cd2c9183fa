"""One metric of every GPU of a host over a span, as a plotext line chart.

Each sample is a dot (plotext's scatter: lines between points cost plotext
ten times as much, and the chart is rebuilt every second), so a gap in the
history is a gap on the chart, never a dip to 0. On the Linux console the
dots are ASCII and plotext's box-drawing frame is translated to ``-``, ``|``
and ``+`` after it is built.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

# One colour per GPU, the same as the GPU column of the utilisation table,
# which is the chart's key (a plotext legend would cover the lines).
GPU_COLOURS: tuple[tuple[int, int, int], ...] = (
    (79, 195, 247),
    (102, 187, 106),
    (239, 83, 80),
    (255, 202, 40),
    (179, 157, 219),
    (255, 138, 101),
    (77, 208, 225),
    (240, 98, 146),
)
Y_LABELS = 5  # columns the y axis takes ("100" and its tick)
BOX_TO_ASCII = str.maketrans({"─": "-", "│": "|", **dict.fromkeys("┌┐└┘├┤┬┴┼", "+")})


def gpu_colour(index: int) -> tuple[int, int, int]:
    return GPU_COLOURS[index % len(GPU_COLOURS)]


def points(values: Sequence[float | None], step_s: float, max_points: int) -> tuple[list[float], list[float]]:
    """(minutes ago, value) of each point to draw, the newest at 0; gaps are left out.

    More values than ``max_points`` are averaged in equal runs first (a run
    with no value stays a gap): a terminal column cannot show more, and
    plotext's cost grows with the points it is given.
    """
    n = len(values)
    per = max(1, -(-n // max(1, max_points)))  # values per point, rounded up
    xs: list[float] = []
    ys: list[float] = []
    for start in range(n % per - per if n % per else 0, n, per):
        run = [v for v in values[max(0, start) : start + per] if v is not None]
        if run:
            newest = start + per - 1  # the run's newest slot
            xs.append(-(n - 1 - newest) * step_s / 60.0)
            ys.append(sum(run) / len(run))
    return xs, ys


def tick_label(minutes_ago: float) -> str:
    """``now``, ``-45s``, ``-7.5m``: seconds under two minutes, else minutes."""
    if minutes_ago == 0:
        return "now"
    if minutes_ago > -2:
        return f"-{-minutes_ago * 60:.0f}s"
    return f"-{-minutes_ago:g}m"


class UtilChart(PlotextPlot):
    """The chart widget; :meth:`draw` sets its data, rendering builds it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ascii = False
        self.drawn: object = None  # what the chart last drew, to skip identical redraws

    def draw(
        self,
        series: dict[int, tuple[list[float | None], float]],
        span_s: float,
        ascii: bool,
        y_top: float = 100.0,
    ) -> None:
        """``series``: GPU index -> (values oldest first, seconds per value);
        ``y_top``: the top of the y axis (100 for percentages)."""
        key = (tuple((i, tuple(v), s) for i, (v, s) in sorted(series.items())), span_s, ascii, self.size.width, y_top)
        if key == self.drawn:
            return
        self.drawn = key
        self.ascii = ascii
        plt = self.plt
        plt.clear_data()
        marker = "." if ascii else "braille"  # braille: two dots a column
        max_points = max(10, (self.size.width or 150) - Y_LABELS) * (1 if ascii else 2)
        for index, (values, step_s) in sorted(series.items()):
            xs, ys = points(values, step_s, max_points)
            if xs:
                plt.scatter(xs, ys, marker=marker, color=gpu_colour(index))
        minutes = span_s / 60.0
        plt.xlim(-minutes, 0.0)
        plt.ylim(0.0, y_top)
        plt.yticks([round(y_top * f) for f in (0.0, 0.25, 0.5, 0.75, 1.0)])
        ticks = [-minutes * f for f in (1.0, 0.75, 0.5, 0.25, 0.0)]
        plt.xticks(ticks, [tick_label(t) for t in ticks])
        self.refresh()

    def render(self) -> RenderResult:
        rendered = super().render()
        if self.ascii and isinstance(rendered, Text):
            # One character for one: the styles' spans keep their places.
            rendered.plain = rendered.plain.translate(BOX_TO_ASCII)
        return rendered
