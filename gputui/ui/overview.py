"""The first screen: every host on one line, the fleet's totals on top.

``m`` cycles the metric the heat map shows, ``s`` the sort order, ``g`` the
grouping (config group, tag), and ``/`` filters by host name, tag, group,
GPU model or user.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from gputui.fleet.store import FleetStore, HostState
from gputui.health.model import Severity
from gputui.ui.alerts import count_words
from gputui.ui.fleet_order import GROUPINGS, SORTS
from gputui.ui.fleet_view import FleetView, header_text
from gputui.ui.heatmap import ASCII_TITLES, METRIC_TITLES, METRICS
from gputui.ui.palette import Palette, ascii_mode

REFRESH_S = 0.5


def _next(options: tuple[str, ...], current: str) -> str:
    return options[(options.index(current) + 1) % len(options)]


class OverviewScreen(Screen[None]):
    BINDINGS = [
        Binding("m", "cycle_metric", "Metric"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("g", "cycle_grouping", "Group"),
        Binding("slash", "filter", "Filter", key_display="/"),
    ]

    def __init__(self, store: FleetStore, title: str) -> None:
        super().__init__()
        self.store = store
        self.title_text = title

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield Static(id="columns")
        yield FleetView(self.store, id="fleet")
        yield Input(placeholder="filter: host, tag, group, GPU model or user (Enter keeps, Esc clears)", id="filter")
        yield Footer()

    @property
    def view(self) -> FleetView:
        return self.query_one(FleetView)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.view.focus()
        self.update_view()
        self.set_interval(REFRESH_S, self._tick)

    def _tick(self) -> None:
        self.update_view()  # looked up each time, so a benchmark can time it

    def update_view(self) -> None:
        """Redraw from the store: ages move even when no frame arrived."""
        view = self.view
        board = getattr(self.app, "board", None)
        view.alert_hosts = board.host_worst if board is not None else {}
        view.reload()
        titles = ASCII_TITLES if ascii_mode(self.app) else METRIC_TITLES
        self.query_one("#columns", Static).update(header_text(view.gpu_columns, titles[view.metric]))
        self.query_one("#summary", Static).update(self.summary())

    def summary(self) -> Text:
        pal = Palette.of(self.app)
        counts = self.store.counts()
        gpus = busy = lost = 0
        for record in self.store.hosts.values():
            for g in record.gpus():
                gpus += 1
                busy += bool(g.processes)
                lost += g.lost
        bold = pal.text + Style(bold=True)
        text = Text.assemble(
            (self.title_text, pal.header),
            self.alert_words(pal),
            "   hosts ",
            (str(len(self.store.hosts)), bold),
            ": ",
            (f"{counts[HostState.LIVE]} live", pal.ok),
            "  ",
            (f"{counts[HostState.STALE]} stale", pal.warn if counts[HostState.STALE] else pal.dim),
            "  ",
            (f"{counts[HostState.DOWN]} down", pal.bad if counts[HostState.DOWN] else pal.dim),
            "  ",
            (f"{counts[HostState.CONNECTING]} connecting", pal.dim),
            "   |   GPUs ",
            (str(gpus), bold),
            f": {busy} busy  {gpus - busy - lost} idle",
        )
        if lost:
            text.append(f"  {lost} lost", pal.bad)
        view = self.view
        text.append(f"   |   sort {view.sort}", pal.dim)
        if view.grouping != "none":
            text.append(f", by {view.grouping}", pal.dim)
        if view.needle:
            text.append(f", filter '{view.needle}' ({len(view.names)} shown)", pal.warn)
        return text

    def alert_words(self, pal: Palette) -> Text:
        """ "   alerts: 2 critical 3 warning (1 silenced)": the app's last evaluation, read, not redone."""
        board = getattr(self.app, "board", None)
        if board is None or (board.ticks == 0 and board.error is None):
            return Text()  # not evaluated yet: no word rather than a wrong "no alerts"
        if board.error:
            return Text("   health rules failed: t for details", pal.bad)
        text = Text("   alerts: " if board.shown else "   ")
        text.append_text(count_words(board.counts, pal, least=Severity.WARNING))
        if board.silenced:
            text.append(f" ({board.silenced} silenced)", pal.dim)
        return text

    def action_cycle_metric(self) -> None:
        self.view.metric = _next(METRICS, self.view.metric)
        self.update_view()

    def action_cycle_sort(self) -> None:
        self.view.sort = _next(SORTS, self.view.sort)
        self.update_view()

    def action_cycle_grouping(self) -> None:
        self.view.grouping = _next(GROUPINGS, self.view.grouping)
        self.update_view()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.view.needle
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.view.needle = event.value.strip()
            self.update_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = False
            self.view.focus()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.view.needle = ""
            self.view.focus()
            self.update_view()

    def on_fleet_view_opened(self, message: FleetView.Opened) -> None:
        from gputui.ui.host_screen import HostScreen

        idle_s = getattr(self.app, "idle_holding_s", 900.0)
        self.app.push_screen(HostScreen(self.store, message.host, idle_holding_s=idle_s))
