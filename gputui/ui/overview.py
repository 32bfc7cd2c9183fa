"""The first screen: every host on one line, the fleet's totals on top."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from gputui.fleet.store import FleetStore, HostState
from gputui.ui.fleet_view import FleetView, header_text
from gputui.ui.palette import Palette

REFRESH_S = 0.5


class OverviewScreen(Screen[None]):
    def __init__(self, store: FleetStore, title: str) -> None:
        super().__init__()
        self.store = store
        self.title_text = title
        self.seen_version = -1

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield Static(id="columns")
        yield FleetView(self.store, id="fleet")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FleetView).focus()
        self.update_view()
        self.set_interval(REFRESH_S, self.update_view)

    def update_view(self) -> None:
        """Redraw from the store: ages move even when no frame arrived."""
        view = self.query_one(FleetView)
        view.reload()
        self.query_one("#columns", Static).update(header_text(view.gpu_columns))
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
        text = Text.assemble(
            (self.title_text, pal.header),
            "   hosts ",
            (str(len(self.store.hosts)), pal.text + Style(bold=True)),
            ": ",
            (f"{counts[HostState.LIVE]} live", pal.ok),
            "  ",
            (f"{counts[HostState.STALE]} stale", pal.warn if counts[HostState.STALE] else pal.dim),
            "  ",
            (f"{counts[HostState.DOWN]} down", pal.bad if counts[HostState.DOWN] else pal.dim),
            "  ",
            (f"{counts[HostState.CONNECTING]} connecting", pal.dim),
            "   |   GPUs ",
            (str(gpus), pal.text + Style(bold=True)),
            f": {busy} busy  {gpus - busy - lost} idle",
        )
        if lost:
            text.append(f"  {lost} lost", pal.bad)
        return text

    def on_fleet_view_opened(self, message: FleetView.Opened) -> None:
        from gputui.ui.host_screen import HostScreen

        self.app.push_screen(HostScreen(self.store, message.host))
