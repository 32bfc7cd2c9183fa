"""Tab 1, Utilization: how busy each GPU is now and lately.

A table with one row per GPU (SM and memory utilisation, memory, PCIe
traffic and a sparkline of the last samples; a GPU in MIG mode has a row per
instance with its memory under its own) above a chart of every GPU's
utilisation over a span that ``s`` cycles; ``m`` turns the chart to memory
used, temperature or power, so that "since when" is one key away. Both come
from the store's history, where a missing value is a gap, drawn as a gap,
never as 0.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from gputui.fleet.mig import MigInstance, mig_instances
from gputui.fleet.store import HostRecord
from gputui.frames import GpuSample
from gputui.render import fmt
from gputui.ui.panels.base import HostPanel, HostView, sparkline
from gputui.ui.panels.util_chart import UtilChart, gpu_colour
from gputui.ui.widgets.table_sync import Cell, sync_rows

SPANS: tuple[tuple[str, float], ...] = (("1 min", 60.0), ("10 min", 600.0), ("1 h", 3600.0))
# (history metric, the chart's title): the metrics the history keeps.
CHART_METRICS: tuple[tuple[str, str], ...] = (
    ("util_pct", "Utilization % per GPU"),
    ("mem_pct", "Memory used % per GPU"),
    ("temp_c", "Temperature C per GPU"),
    ("power_w", "Power W per GPU"),
)
DEFAULT_SPAN = 1  # 10 min: enough to see a job start or stop, short enough to fill soon
SPARK_SAMPLES = 60  # at most; fewer when the terminal has no room for them
SPARK_MIN = 15
COLUMNS = ("GPU", "SM util", "Mem util", "Memory used / total", "PCIe rx", "PCIe tx", f"Util, last {SPARK_SAMPLES} samples")


def chart_top(metric: str, record: HostRecord, series: dict[int, tuple[list[float | None], float]]) -> float:
    """The y axis's top: 100 for percentages; for temperature the GPUs'
    shutdown point (so the distance to it shows), for power their maximum
    limit, either raised to the highest value drawn."""
    if metric in ("util_pct", "mem_pct"):
        return 100.0
    drawn = max((v for values, _ in series.values() for v in values if v is not None), default=0.0)
    statics = [record.static(i) for i in series]
    if metric == "temp_c":
        limits = [float(s.temp_shutdown_c) for s in statics if s is not None and s.temp_shutdown_c]
        top = max(limits, default=100.0)
    else:
        watts = [s.power_max_w for s in statics if s is not None and s.power_max_w]
        top = max(watts, default=drawn or 100.0)
    return float(max(top, drawn, 1.0))


def kib_s(value: float | None) -> str:
    return fmt(value, "{:,.0f} KiB/s")


def spark_label(samples: int) -> str:
    return f"Util, last {samples} samples" if samples >= 22 else f"last {samples} samples"


class UtilizationPanel(HostPanel):
    BINDINGS = [Binding("s", "cycle_span", "Span"), Binding("m", "cycle_metric", "Chart metric")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.span_index = DEFAULT_SPAN
        self.metric_index = 0
        self.last_view: HostView | None = None
        self.spark_w = SPARK_SAMPLES  # samples the sparkline column shows: what fits beside the other columns

    @property
    def span(self) -> tuple[str, float]:
        """(name, seconds) of the span the chart shows."""
        return SPANS[self.span_index]

    def compose(self) -> ComposeResult:
        yield DataTable(id="gpus", cursor_type="row", zebra_stripes=True)
        yield Static(id="util-span")
        yield UtilChart(id="util-chart")

    def on_mount(self) -> None:
        self.query_one("#gpus", DataTable).add_columns(*COLUMNS)

    def action_cycle_span(self) -> None:
        self.set_span((self.span_index + 1) % len(SPANS))

    def action_cycle_metric(self) -> None:
        self.metric_index = (self.metric_index + 1) % len(CHART_METRICS)
        if self.last_view is not None:
            self.show_chart(self.last_view)

    def set_span(self, index: int) -> None:
        self.span_index = index % len(SPANS)
        if self.last_view is not None:
            self.show(self.last_view)

    def show(self, view: HostView) -> None:
        self.last_view = view
        table = self.query_one("#gpus", DataTable)
        self.fill(table, view)
        room = self.spark_room(table)
        if room != self.spark_w:  # the terminal or the other columns changed width: fit the sparklines again
            self.spark_w = room
            table.columns[table.ordered_columns[-1].key].label = Text(spark_label(room))
            self.fill(table, view)
        self.show_chart(view)

    def fill(self, table: DataTable[Cell], view: HostView) -> None:
        """One row per GPU; the sparkline is the last ``spark_w`` samples, oldest on the left."""
        record = view.record
        rows: dict[str, tuple[Cell, ...]] = {}
        for g in view.gpus():
            hist = record.history.get(g.index)
            spark = hist.series("util_pct", SPARK_SAMPLES * record.interval_s)[-self.spark_w :] if hist else []
            rows[str(g.index)] = self.row(g, sparkline(spark, view.ascii, len(spark)), view)
            for m in mig_instances(record, g):
                rows[f"{g.index}/{m.index}"] = self.instance_row(m, view)
        sync_rows(table, rows)

    def spark_room(self, table: DataTable[Cell]) -> int:
        """How many sparkline samples fit on screen beside the other columns (SPARK_MIN..SPARK_SAMPLES)."""
        width = table.scrollable_content_region.width
        if width <= 0:
            return self.spark_w  # not laid out yet
        others = sum(column.get_render_width(table) for column in table.ordered_columns[:-1])
        return max(SPARK_MIN, min(SPARK_SAMPLES, width - others - 2 * table.cell_padding))

    def show_chart(self, view: HostView) -> None:
        record = view.record

        name, span_s = self.span
        metric, title = CHART_METRICS[self.metric_index]
        label = Text.assemble(
            (title, view.pal.header),
            f", last {name}",
            ("   s: 1 min / 10 min / 1 h   m: util / memory / temp / power   colours as in the GPU column", view.pal.dim),
        )
        self.query_one("#util-span", Static).update(label)
        series: dict[int, tuple[list[float | None], float]] = {}
        for index, hist in record.history.items():
            series[index] = (hist.series(metric, span_s), hist.step_s(span_s))
        self.query_one(UtilChart).draw(series, span_s, view.ascii, chart_top(metric, record, series))

    @staticmethod
    def instance_row(m: MigInstance, view: HostView) -> tuple[Cell, ...]:
        """A MIG instance under its GPU: its memory (NVML gives no utilisation in MIG mode)."""
        style = view.pal.dim if view.stale else view.pal.text
        memory = Text(f"{fmt(m.mem_used_mib)} / {fmt(m.mem_total_mib)} MiB", style=style, justify="right")
        branch = "`-" if view.ascii else "└"
        return (Text(f"{branch} {m.label}", style=view.pal.dim), "", "", memory, "", "", "")

    def row(self, g: GpuSample, spark: str, view: HostView) -> tuple[Cell, ...]:
        pal = view.pal
        gpu = Text(str(g.index), style=Style(color=f"rgb{gpu_colour(g.index)}", bold=True))
        if g.lost:
            return (gpu, Text("LOST", style=pal.bad), "", "", "", "", Text("fallen off the bus: no data", style=pal.bad))
        style = pal.dim if view.stale else pal.text

        def num(text: str) -> Text:
            return Text(text, style=style, justify="right")

        return (
            gpu,
            num(fmt(g.util_pct, "{}%")),
            num(fmt(g.mem_util_pct, "{}%")),
            num(f"{fmt(g.mem_used_mib)} / {fmt(g.mem_total_mib)} MiB"),
            num(kib_s(g.pcie_rx_kib_s)),
            num(kib_s(g.pcie_tx_kib_s)),
            Text(spark, style=pal.dim if view.stale else pal.accent),
        )
