"""The Textual application: owns the store and the sources, shows screens."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import ModalScreen, Screen
from textual.scrollbar import ScrollBar, ScrollBarRender

from gputui.actions.guard import Outcome
from gputui.actions.model import Target
from gputui.config import Config, ConfigError, Host, Thresholds
from gputui.config_write import append_host, set_theme
from gputui.fleet.pace import PACE_S, Pace, judging_every_s
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore
from gputui.health.engine import SLICE_S, HealthEngine
from gputui.health.model import Severity
from gputui.health.notify_send import Notifier
from gputui.record.player import ReplayPlayer
from gputui.slurm.model import SlurmView
from gputui.sources.base import Source
from gputui.ui.dialogs.action_screen import ActionDesk, ActionScreen, Draft
from gputui.ui.dialogs.help_screen import HelpScreen
from gputui.ui.panels.base import AsciiScrollBarRender
from gputui.ui.screens.audit_screen import AuditScreen
from gputui.ui.screens.connections import ConnectionsScreen
from gputui.ui.screens.overview import REFRESH_S as OVERVIEW_REFRESH_S
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.screens.seam import AppParts, OpenAction, Refreshed
from gputui.ui.screens.triage_screen import TriageScreen
from gputui.ui.screens.welcome import WelcomeScreen
from gputui.ui.state.alerts import AlertBoard, Evaluate, health_engine
from gputui.ui.themes import console_terminal, pick_theme, register_themes, theme_is_ascii
from gputui.ui.widgets.commands import FleetCommands, FleetPalette, ThemeCommands
from gputui.ui.widgets.replay_bar import TAPE_BINDINGS, TapeDeck

if TYPE_CHECKING:
    from gputui.ui.heap import HeapSettler

# After an overview refresh (and the redraw it asks for) has run: the pass, 200 ms at 1,024 hosts
# on a busy machine, has most of the time until the next one (gputui/ui/screens/seam.py, Refreshed).
HEALTH_AFTER_REFRESH_S = 0.1
WELCOME_HIDES = {"connections", "audit", "triage"}  # app keys that need a fleet
ASCII_KEYS = {"up": "up", "down": "down", "enter": "enter", "escape": "esc", "question_mark": "?", "slash": "/"}


@runtime_checkable
class RedrawnView(Protocol):
    """A screen that draws the store on a tick (overview, host, triage, connections)."""

    def update_view(self) -> None: ...


class GpuTuiApp(App[None]):
    CSS_PATH = "gputui.tcss"
    COMMANDS = App.COMMANDS | {FleetCommands}
    TITLE = "gputui"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("c", "connections", "Connections"),
        Binding("A", "audit", "Audit log", key_display="A"),
        Binding("t", "triage", "Triage"),
        *TAPE_BINDINGS,  # record (ctrl+r) and, in a replay, play/pause, speed, seek
        Binding("ctrl+p", "command_palette", "Palette", key_display="^p"),  # in the footer's row (KeysFooter)
    ]

    def __init__(
        self,
        store: FleetStore | None = None,
        sources: Sequence[Source] = (),
        title: str = "gputui",
        theme: str = "gputui-dark",
        welcome: tuple[Path, str | None] | None = None,
        on_exit: Callable[[], Awaitable[None]] | None = None,
        config_path: Path | None = None,
        source_factory: Callable[[Host], Source] | None = None,
        idle_holding_s: float = 900.0,
        config: Config | None = None,
        read_only: bool = False,
        triage_first: bool = False,
        health: Evaluate | None = None,
        replay: ReplayPlayer | None = None,
        wall_clock: Callable[[], float] = time.time,
        pace: Pace | None = None,
    ) -> None:
        super().__init__()
        self.tape = TapeDeck(self, replay)
        # Actions need a config (hosts, policy, audit log); the demo and welcome screens have none.
        self.actions = ActionDesk(config, read_only) if config is not None else None
        # Alerts: evaluated once a tick; acks and silences go to the actions' audit log (in memory in the demo).
        thresholds = config.thresholds if config is not None else Thresholds()
        # ``wall_clock``: a replay's alerts are judged at the recording's time, not today's.
        audit = self.actions.audit if self.actions else None
        self.wall_clock = wall_clock
        self.engine: HealthEngine | None = None
        if health is not None:  # tests give their own
            self.board = AlertBoard(health, audit, clock=wall_clock)
        else:
            self.engine = health_engine(thresholds, wall_clock)
            steps = partial(self.engine.evaluate_in_steps, slice_s=SLICE_S)  # slices of time as well as hosts
            self.board = AlertBoard(self.engine.evaluate, audit, clock=wall_clock, steps=steps)
        # Set by ``run_app`` (gputui/ui/launch.py): not in tests, whose apps share one process's collector.
        self.heap: HeapSettler | None = None
        self.triage_first = triage_first  # open the triage screen the first time a warning or worse is active
        # New critical alerts reach people ([notify]); never from a replay: that incident is over.
        live = config is not None and replay is None and config.notify.active
        self.notifier = Notifier(config.notify, self.notify_failed) if live and config is not None else None
        self.store = store or FleetStore()
        self.runner = FleetRunner(sources, self.store)
        # Whether hosts look stale because the dashboard cannot read their frames in time (on screen).
        self.pace = pace or Pace(self.store)
        self.fleet_title = title
        self.welcome = welcome
        self.on_exit = on_exit
        self.config_path = config_path
        self.ascii = False  # ASCII-only drawing: set with the console theme
        self.source_factory = source_factory
        self.idle_holding_s = idle_holding_s
        self.theme_problems = register_themes(self)
        # A source that finds hosts as it goes (Prometheus) hands them to the runner; one that could
        # not list its hosts at the start says why once the screen is up (gputui/ui/launch.py sets both).
        self.follow_new: Callable[[Callable[[Source], None]], None] | None = None
        self.source_problems: list[str] = []
        # The site's Slurm ([slurm]): read by the runner beside the hosts (gputui/ui/launch.py sets it).
        self.follow_cluster: Callable[[Callable[[SlurmView], None]], Awaitable[None]] | None = None
        self.configured_theme = theme
        self.ready = False  # theme changes before this are not the operator's
        self.judging = False  # a health pass is due or running (on_refreshed)
        self.judged_at = -math.inf  # when the last one was set going
        self.theme = pick_theme(theme, self.available_themes)
        self.draw_ascii(theme_is_ascii(self))

    def on_mount(self) -> None:
        self.ready = True
        if self.welcome is not None:
            self.push_screen(WelcomeScreen(*self.welcome))
            return
        self.runner.start()
        if self.follow_new is not None:
            self.follow_new(self.runner.add)
        if self.follow_cluster is not None:
            self.runner.follow_cluster(self.follow_cluster)
        self.tape.attach()
        self.set_interval(PACE_S, self.pace.measure)
        self.push_screen(OverviewScreen(self.store, self.fleet_title, self.parts()))
        self.health_tick()  # a store that starts full (a replay, a snapshot) is judged before the first draw
        # The passes after it start a moment after every other overview refresh (on_refreshed).
        if self.heap is not None:
            self.set_interval(self.heap.young_every_s, self.heap.collect_young)
            self.set_interval(self.heap.trim_every_s, self.heap.give_back)
        for problem in self.theme_problems:
            self.notify(problem, severity="warning", timeout=10)
        for problem in self.source_problems:
            self.notify(f"{problem}; trying again", severity="error", timeout=20, markup=False)

    async def on_unmount(self) -> None:
        if self.notifier is not None:
            await self.notifier.close()
        await self.tape.close()
        await self.runner.stop()
        if self.on_exit is not None:
            await self.on_exit()

    def action_connections(self) -> None:
        if self.welcome is None and not isinstance(self.screen, ConnectionsScreen):
            can_add = self.config_path is not None and self.source_factory is not None
            self.push_screen(ConnectionsScreen(self.store, self.runner.retry_now, self.add_host if can_add else None))

    def add_host(self, host: Host) -> str | None:
        """Append the host to the config, then start following it; why not, when the config refuses it."""
        if self.config_path is None or self.source_factory is None:
            return "no config file in use: start gputui with a config to add hosts"
        try:
            append_host(self.config_path, host)
        except ConfigError as exc:
            return str(exc)
        self.runner.add(self.source_factory(host), tuple(host.tags), host.group)
        self.notify(f"{host.name} added to {self.config_path}", markup=False)
        return None

    def watch_theme(self, name: str) -> None:
        """Follow a theme change: ASCII drawing for the console theme, and the
        operator's choice saved to the config (never the automatic console one)."""
        self.draw_ascii(theme_is_ascii(self, name))
        if self.ready:
            self.redraw_screens()
            if name != self.configured_theme:
                self.save_theme(name)

    def redraw_screens(self) -> None:
        """Redraw each screen's data now, in the new theme's colours and characters: their own
        ticks (up to a second away) would leave braille charts on the console until then."""
        for screen in self.screen_stack:
            if isinstance(screen, RedrawnView) and screen.is_mounted:
                screen.update_view()

    def draw_ascii(self, ascii: bool) -> None:
        """ASCII only (the console theme), or not: the CSS class the stylesheet keys on, and every
        scrollbar, of every screen, drawn with spaces instead of eighth blocks (Textual's documented
        way: the ``ScrollBar.renderer`` class variable)."""
        self.ascii = ascii
        self.set_class(ascii, "-ascii")
        ScrollBar.renderer = AsciiScrollBarRender if ascii else ScrollBarRender

    def save_theme(self, name: str) -> None:
        if self.config_path is None or (console_terminal() and self.ascii):
            return
        try:
            set_theme(self.config_path, name)
        except ConfigError as exc:
            self.notify(f"theme not saved: {exc}", severity="warning", markup=False)
            return
        self.configured_theme = name

    def get_key_display(self, binding: Binding) -> str:
        """Key names in ASCII on the console: no arrows or return symbols."""
        if self.ascii:
            key = binding.key_display or binding.key.split(",")[0]
            return ASCII_KEYS.get(key, key)
        return super().get_key_display(binding)

    def overview(self) -> OverviewScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, OverviewScreen):
                return screen
        return None

    def open_host(self, name: str) -> None:
        from gputui.ui.screens.host_screen import HostScreen

        overview = self.overview()
        if overview is not None:
            while self.screen is not overview:
                self.pop_screen()
        self.push_screen(HostScreen(self.store, name, self.parts()))

    def set_span(self, index: int) -> None:
        """The utilisation chart's span (from the palette); opens that panel."""
        from gputui.ui.panels.utilization import UtilizationPanel
        from gputui.ui.screens.host_screen import HostScreen

        if isinstance(self.screen, HostScreen):
            for panel in self.screen.query(UtilizationPanel):
                panel.set_span(index)
            self.screen.action_show_tab("utilization")
        else:
            self.notify("open a host first: the span is its utilisation chart's", severity="warning")

    def set_view(self, metric: str | None = None, sort: str | None = None, grouping: str | None = None) -> None:
        """Change the overview's metric, sort or grouping (from the palette)."""
        overview = self.overview()
        if overview is None:
            return
        view = overview.view
        view.metric = metric or view.metric
        view.sort = sort or view.sort
        view.grouping = grouping or view.grouping
        overview.update_view()

    def action_audit(self) -> None:
        if self.welcome is None and not isinstance(self.screen, AuditScreen):
            self.push_screen(AuditScreen(self.store, self.actions.audit if self.actions else None))

    def parts(self) -> AppParts:
        """What a screen may read of the app, handed to it when it is made (never looked up by name)."""
        return AppParts(
            board=self.board, actions=self.actions, idle_holding_s=self.idle_holding_s, pace=self.pace, wall_clock=self.wall_clock
        )

    def on_refreshed(self, message: Refreshed) -> None:
        """The overview refreshed: start a health pass a moment later, once a second (each
        refresh; rarer while the dashboard is behind its hosts: ``judging_every_s``), never while
        one is still running."""
        now = time.monotonic()
        board = self.board
        board.every_s = judging_every_s(self.pace.reading, board.pass_s)
        if self.judging or now - self.judged_at < board.every_s - OVERVIEW_REFRESH_S / 2:
            return
        self.judging = True
        self.judged_at = now
        self.set_timer(HEALTH_AFTER_REFRESH_S, self.health_tick_async)

    def on_open_action(self, message: OpenAction) -> None:
        """A screen asks for the action dialog (the host screen, the triage)."""
        self.open_action(message.kind, list(message.targets), message.detail, message.done, message.reason)

    def open_action(
        self,
        kind: str,
        targets: list[Target],
        detail: str = "",
        done: Callable[[Outcome | None], None] | None = None,
        reason: str = "",
    ) -> None:
        """The action dialog for ``targets``; ``done`` gets the outcome when it closes;
        ``reason`` pre-fills the form's."""
        if self.actions is None:
            self.notify("actions need a config file: the demo fleet is simulated in-process", severity="warning")
            return
        if not targets:
            self.notify("nothing selected: move the cursor to a GPU or process first", severity="warning")
            return
        self.push_screen(ActionScreen(self.actions, Draft(kind, tuple(targets), detail, reason)), done)

    def health_tick(self) -> None:
        """Evaluate the rules in one go (at start: judged before the first draw)."""
        self.board.tick(self.store)
        self.after_health_tick()

    async def health_tick_async(self) -> None:
        """A pass of the rules over the store in slices, so input and redraws go on meanwhile."""
        try:
            await self.board.tick_async(self.store)
        finally:
            self.judging = False
        self.after_health_tick()
        if self.heap is not None and self.heap.check():
            self.heap = None

    def health_restart(self) -> None:
        """A replay jumped: judge the fleet afresh, as if opened at the new moment."""
        if self.engine is not None:
            self.engine.reset()
        self.health_tick()

    def after_health_tick(self) -> None:
        """The first time a warning or a critical alert is active, show the triage screen (once).

        Info alerts (persistence mode off, an application XID) are counted on
        the overview and listed in the triage, but never take the screen.
        Only over the overview: an operator already in a host, a dialog or
        the help is told with a notice instead of being pulled away.
        """
        if self.notifier is not None and self.board.error is None:
            self.notifier.consider(self.board.alerts, self.board.silences.keys())
        urgent = [a for a in self.board.shown if a.severity >= Severity.WARNING]
        if self.triage_first and urgent:
            self.triage_first = False
            if isinstance(self.screen, OverviewScreen):
                self.action_triage()
            else:
                words = f"{len(urgent)} active alert{'s' * (len(urgent) != 1)}"
                self.notify(f"{words}: t opens the triage", severity="warning", timeout=10)

    def notify_failed(self, problem: str) -> None:
        """A notification that did not go out: on screen (it is also logged)."""
        self.notify(f"notification not sent: {problem}", severity="error", timeout=15, markup=False)

    def action_triage(self) -> None:
        """The triage screen over the overview (any screen between is closed); never over a dialog."""
        if self.welcome is not None or isinstance(self.screen, (TriageScreen, ModalScreen)):
            return
        overview = self.overview()
        if overview is not None:
            while self.screen is not overview:
                self.pop_screen()
        refresh = partial(self.board.tick, self.store)
        self.push_screen(TriageScreen(self.store, self.board, refresh, self.parts()))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.welcome is not None and action in WELCOME_HIDES:
            return False  # nothing to connect to, audit or triage yet: not in the welcome screen's footer
        return self.tape.allows(action)

    def action_command_palette(self) -> None:
        """Textual's palette, in ASCII on the console (ctrl+p)."""
        if self.use_command_palette and not isinstance(self.screen, CommandPalette):
            self.push_screen(FleetPalette())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's own commands, with "Keys" opening gputui's help (``?``), drawn in ASCII
        on the console, instead of Textual's key panel."""
        for command in super().get_system_commands(screen):
            if command.title == "Keys":
                yield SystemCommand("Keys", "every key of every screen (?)", self.action_help)
            else:
                yield command

    def search_themes(self) -> None:
        """The palette's "Theme" command: gputui's and the user's themes, in ASCII on the console."""
        self.push_screen(FleetPalette([ThemeCommands], placeholder="Search for themes...", id=None))

    def action_replay(self, command: str) -> None:
        self.tape.command(command)

    async def action_record(self) -> None:
        await self.tape.toggle_recording()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))
