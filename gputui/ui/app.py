"""The Textual application: owns the store and the links, shows screens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from gputui.config import ConfigError, Host
from gputui.config_write import append_host
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore
from gputui.transport.base import Link
from gputui.ui.connections import ConnectionsScreen
from gputui.ui.help_screen import HelpScreen
from gputui.ui.overview import OverviewScreen
from gputui.ui.themes import register_themes
from gputui.ui.welcome import WelcomeScreen


class GpuTuiApp(App[None]):
    CSS_PATH = "gputui.tcss"
    TITLE = "gputui"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("c", "connections", "Connections"),
    ]

    def __init__(
        self,
        store: FleetStore | None = None,
        links: Sequence[Link] = (),
        title: str = "gputui",
        theme: str = "gputui-dark",
        welcome: tuple[Path, str | None] | None = None,
        on_exit: Callable[[], None] | None = None,
        config_path: Path | None = None,
        link_factory: Callable[[Host], Link] | None = None,
    ) -> None:
        super().__init__()
        self.store = store or FleetStore()
        self.runner = FleetRunner(links, self.store)
        self.fleet_title = title
        self.welcome = welcome
        self.on_exit = on_exit
        self.config_path = config_path
        self.ascii = False  # ASCII-only drawing: set with the console theme
        self.link_factory = link_factory
        self.theme_problems = register_themes(self)
        self.theme = theme if theme in self.available_themes else "gputui-dark"

    def on_mount(self) -> None:
        if self.welcome is not None:
            self.push_screen(WelcomeScreen(*self.welcome))
            return
        self.runner.start()
        self.push_screen(OverviewScreen(self.store, self.fleet_title))
        for problem in self.theme_problems:
            self.notify(problem, severity="warning", timeout=10)

    async def on_unmount(self) -> None:
        await self.runner.stop()
        if self.on_exit is not None:
            self.on_exit()

    def action_connections(self) -> None:
        if self.welcome is None and not isinstance(self.screen, ConnectionsScreen):
            can_add = self.config_path is not None and self.link_factory is not None
            self.push_screen(ConnectionsScreen(self.store, self.runner.retry_now, can_add))

    def add_host(self, host: Host | None) -> None:
        """Append the host to the config, then start following it."""
        if host is None or self.config_path is None or self.link_factory is None:
            return
        try:
            append_host(self.config_path, host)
        except ConfigError as exc:
            self.notify(str(exc), severity="error", timeout=15, markup=False)
            return
        self.runner.add(self.link_factory(host))
        self.notify(f"{host.name} added to {self.config_path}", markup=False)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))
