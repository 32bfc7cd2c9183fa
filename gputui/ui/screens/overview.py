"""The first screen: every host on one line, the fleet's totals on top.

``m`` cycles the metric the heat map shows, ``s`` the sort order, ``g`` the
grouping (config group, tag), and ``/`` filters by host name, tag, group,
GPU model or user (``Enter`` keeps the filter, ``Esc`` clears it, kept or not).

The two lines on top: the fleet (title, hosts, GPUs, the order), then what
needs a look (alerts, lost GPUs, the filter and how many hosts it shows),
kept short enough for an 80-column terminal.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, Static

from gputui.fleet.store import FleetStore, HostState
from gputui.health.model import Severity
from gputui.ui.screens.seam import AppParts, Refreshed
from gputui.ui.state.alerts import count_words
from gputui.ui.widgets.fleet_order import GROUPINGS, SORTS
from gputui.ui.widgets.fleet_view import FleetView
from gputui.ui.widgets.footer import KeysFooter
from gputui.ui.widgets.heatmap import ASCII_TITLES, METRIC_TITLES, METRICS
from gputui.ui.widgets.palette import Palette, ascii_mode

# Once a second, the pace hosts send at (and nvidia-smi -l, nvtop and gpustat refresh at): each row
# can change only that often. Twice a second, a new sample reached the screen a quarter of a second
# sooner on average, and redrawing was half of the dashboard's CPU at 64 hosts (docs/scale.md,
# "The overview's pace"). Keys and clicks redraw at once, not at the next refresh.
REFRESH_S = 1.0


def _next(options: tuple[str, ...], current: str) -> str:
    return options[(options.index(current) + 1) % len(options)]


class OverviewScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "clear_filter", "Clear filter", key_display="esc"),
        Binding("m", "cycle_metric", "Metric"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("g", "cycle_grouping", "Group"),
        Binding("slash", "filter", "Filter", key_display="/"),
    ]

    def __init__(self, store: FleetStore, title: str, parts: AppParts | None = None) -> None:
        super().__init__()
        self.store = store
        self.title_text = title
        self.parts = parts or AppParts()  # the alert board (the counts on top, each host's worst alert)

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield Static(id="columns")
        yield FleetView(self.store, id="fleet")
        yield Input(placeholder="filter: host, tag, group, GPU model or user (Enter keeps, Esc clears)", id="filter")
        yield KeysFooter()

    @property
    def view(self) -> FleetView:
        return self.query_one(FleetView)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.view.focus()
        self.update_view()
        self.set_interval(REFRESH_S, self._tick)

    def on_resize(self) -> None:
        self.update_view()  # the summary's words fit the new width

    def _tick(self) -> None:
        self.update_view()  # looked up each time, so a benchmark can time it
        self.post_message(Refreshed())  # the app's health pass keeps clear of the next one

    def update_view(self) -> None:
        """Redraw from the store: ages move even when no frame arrived."""
        view = self.view
        board = self.parts.board
        view.alert_hosts = board.host_worst if board is not None else {}
        view.reload()
        titles = ASCII_TITLES if ascii_mode(self.app) else METRIC_TITLES
        # Both have a fixed height (gputui.tcss), so new words need no new layout of the screen: with
        # one, every refresh re-arranged and redrew every widget, the fleet's lines included.
        self.query_one("#columns", Static).update(view.columns.header(view.gpu_columns, titles[view.metric]), layout=False)
        self.query_one("#summary", Static).update(self.summary(), layout=False)

    def summary(self) -> Text:
        """Two lines: the fleet (title, hosts, GPUs, order), then what needs a look
        (alerts, lost GPUs, the filter), short enough for 80 columns."""
        pal = Palette.of(self.app)
        gpus = self.gpu_counts()
        return Text("\n").join([self.fleet_line(pal, gpus), self.attention_line(pal, gpus[2])])

    def gpu_counts(self) -> tuple[int, int, int]:
        """(GPUs, busy, lost) over the fleet, as last counted (``FleetFigures``: again only after a change)."""
        figures = self.view.figures.current()
        return figures.gpus, figures.busy, figures.lost

    def fleet_line(self, pal: Palette, gpu_counts: tuple[int, int, int]) -> Text:
        """ "demo   hosts 3: 3 live  0 stale ...   GPUs 24: 7 busy 16 idle 1 lost   sort name"

        Where that is wider than the screen, the counts that are zero (and the lost GPUs, which the
        second line counts) are left out and the title gives way, so the order ``s`` sets is always in sight.
        """
        full = Text.assemble((self.title_text, pal.header), "   ", self.fleet_counts(pal, gpu_counts, False))
        width = self.size.width - 2 or self.app.size.width - 2  # less the summary's padding
        if full.cell_len <= width:
            return full
        counts = self.fleet_counts(pal, gpu_counts, True)
        room = width - counts.cell_len - 3
        if room < len("demo") + 2:
            return counts
        title = Text(self.title_text, pal.header)
        title.truncate(room, overflow="crop" if ascii_mode(self.app) else "ellipsis")
        return Text.assemble(title, "   ", counts)

    def fleet_counts(self, pal: Palette, gpu_counts: tuple[int, int, int], narrow: bool) -> Text:
        counts = self.view.figures.current().states
        gpus, busy, lost = gpu_counts
        bold = pal.text + Style(bold=True)
        text = Text.assemble("hosts ", (str(len(self.store.hosts)), bold), ": ", (f"{counts[HostState.LIVE]} live", pal.ok))
        others = (
            (HostState.STALE, "stale", pal.warn),
            (HostState.DOWN, "down", pal.bad),
            (HostState.CONNECTING, "connecting", pal.dim),
        )
        for state, word, style in others:
            if counts[state] or not narrow:
                text.append("  ")
                text.append(f"{counts[state]} {word}", style if counts[state] else pal.dim)
        text.append_text(Text.assemble("   GPUs ", (str(gpus), bold), f": {busy} busy  {gpus - busy - lost} idle"))
        if lost and not narrow:
            text.append(f"  {lost} lost", pal.bad)
        view = self.view
        text.append(f"   sort {view.sort}", pal.dim)
        if view.grouping != "none":
            text.append(f", by {view.grouping}", pal.dim)
        return text

    def attention_line(self, pal: Palette, lost: int) -> Text:
        """ "alerts: 2 critical 1 warning   1 GPU lost   filter 'h100': 9 of 64 hosts   (1 silenced)",
        after "dashboard behind: ..." while it cannot read its hosts' frames in time: then hosts
        that look stale may only be waiting on it, and that comes before what it says of them."""
        text = self.alert_words(pal)
        behind = self.parts.behind_words()
        if behind:
            text = Text.assemble((behind, pal.warn), "   " if text else "", text)
        if lost:
            text.append("   " if text else "")
            text.append(f"{lost} GPU{'s' * (lost != 1)} lost", pal.bad)
        view = self.view
        if view.needle:
            text.append("   " if text else "")
            shown = view.arrangement.hosts_shown
            if shown:
                text.append(f"filter '{view.needle}': {shown} of {len(self.store.hosts)} hosts", pal.warn)
            else:
                text.append(f"no hosts match '{view.needle}'", pal.warn)
        board = self.parts.board
        if board is not None and board.silenced and not board.error:
            text.append(f"   ({board.silenced} silenced)", pal.dim)
        return text

    def alert_words(self, pal: Palette) -> Text:
        """ "alerts: 2 critical 3 warning": the app's last evaluation, read, not redone."""
        board = self.parts.board
        if board is None or (board.ticks == 0 and board.error is None):
            return Text()  # not evaluated yet: no word rather than a wrong "no alerts"
        if board.error:
            return Text("health rules failed: t for details", pal.bad)
        text = Text("alerts: " if board.shown else "")
        text.append_text(count_words(board.counts, pal, least=Severity.WARNING))
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
        self.refresh_bindings()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.view.needle = event.value.strip()
            self.update_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = False
            self.view.focus()
            self.refresh_bindings()

    def action_clear_filter(self) -> None:
        """Esc: close the filter box, or drop a filter kept with Enter."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.view.needle = ""
        self.view.focus()
        self.update_view()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":  # shown in the footer only while there is a filter to clear
            views, boxes = self.query(FleetView).results(), self.query("#filter").results(Input)
            return any(view.needle for view in views) or any(box.display for box in boxes)
        return True

    def on_fleet_view_opened(self, message: FleetView.Opened) -> None:
        from gputui.ui.screens.host_screen import HostScreen

        self.app.push_screen(HostScreen(self.store, message.host, self.parts))
