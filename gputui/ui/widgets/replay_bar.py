"""Record and replay in the dashboard: the bar, the keys, the go-to dialog.

A replay must never pass for live: while one plays, every full screen has a
bar at the bottom saying REPLAY, the recording's clock time, the position
and the speed. While the live fleet is being recorded (``ctrl+r``) the same
bar says REC and where the file goes. The app keeps one :class:`TapeDeck`
and forwards its keys to it, so app.py needs only a few lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Static

from gputui.record import format as fmt
from gputui.record.player import ReplayPlayer, parse_offset
from gputui.ui.widgets.palette import Palette, ascii_mode

if TYPE_CHECKING:
    from gputui.record.recorder import Recorder
    from gputui.ui.app import GpuTuiApp

REFRESH_S = 0.25
STEP_S, BIG_STEP_S = 10.0, 60.0
PROGRESS_CELLS = 20
TAPE_BINDINGS = [
    Binding("space", "replay('toggle')", "Play/pause", key_display="space", priority=True),
    Binding("plus,equals_sign", "replay('faster')", "Faster replay", key_display="+", show=False, priority=True),
    Binding("minus", "replay('slower')", "Slower replay", key_display="-", show=False, priority=True),
    Binding("left", "replay('back')", "Back 10 s", show=False, priority=True),
    Binding("right", "replay('forward')", "On 10 s", show=False, priority=True),
    Binding("shift+left", "replay('back_more')", "Back 60 s", show=False, priority=True),
    Binding("shift+right", "replay('forward_more')", "On 60 s", show=False, priority=True),
    Binding("home", "replay('start')", "To the recording's start", show=False, priority=True),
    Binding("end", "replay('end')", "To the recording's end", show=False, priority=True),
    Binding("colon", "replay('goto')", "Go to time", key_display=":", priority=True),
    Binding("ctrl+r", "record", "Record"),
]


class ReplayBar(Static):
    """One line at the bottom of a screen: REPLAY (time, position, speed) or REC (file, size).

    Cut with an ellipsis where the line is too short, but not on the Linux console,
    which has no such character: the rules are unscoped so they can key on the app's
    ``-ascii`` class.
    """

    SCOPED_CSS = False
    DEFAULT_CSS = """
    ReplayBar {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    App.-ascii ReplayBar {
        text-overflow: clip;
    }
    """

    def __init__(self, deck: TapeDeck) -> None:
        super().__init__(id="replay-bar")
        self.deck = deck

    def on_mount(self) -> None:
        self.update_bar()
        self.set_interval(REFRESH_S, self.update_bar)

    def update_bar(self) -> None:
        deck = self.deck
        self.display = deck.replay is not None or deck.recorder is not None
        if deck.replay is not None:
            self.update(replay_text(deck.replay, Palette.of(self.app), ascii_mode(self.app)))
        elif deck.recorder is not None:
            self.update(recording_text(deck.recorder, Palette.of(self.app)))


def replay_text(player: ReplayPlayer, pal: Palette, ascii: bool) -> Text:
    rec = player.recording
    now = player.now()
    length = max(0.0, rec.ended_at - rec.started_at)
    done = 0.0 if length == 0 else (now - rec.started_at) / length
    if player.at_end:
        state = "end" if ascii else "■ end"
    elif player.playing:
        state = "> playing" if ascii else "▶ playing"
    else:
        state = "|| paused" if ascii else "⏸ paused"
    filled = round(done * PROGRESS_CELLS)
    full, empty = ("#", "-") if ascii else ("█", "░")
    speed = f"{player.speed:g}x" if ascii else f"{player.speed:g}×"
    text = Text.assemble(
        (" REPLAY ", pal.warn + Style(reverse=True)),
        "  ",
        (state, pal.warn),
        f" {speed}   ",
        (fmt.date_time(now), pal.text + Style(bold=True)),
        f"   {fmt.duration_text(now - rec.started_at)} / {fmt.duration_text(length)} ",
        (full * filled, pal.accent),
        (empty * (PROGRESS_CELLS - filled), pal.dim),
        f"   {rec.path.name}",
    )
    if player.problems:
        text.append(f"   ! {len(player.problems)} damaged part(s): see the notice", pal.bad)
    text.append("   not live.  ", pal.dim)
    keys = "space pause  +/- speed  </> 10 s  : go to" if ascii else "space ⏯  +/- speed  ←/→ 10 s  : go to"
    text.append(keys, pal.dim)
    return text


def recording_text(recorder: Recorder, pal: Palette) -> Text:
    info = recorder.info
    text = Text.assemble(
        (" REC ", pal.bad + Style(reverse=True)),
        f"  {recorder.path}   {info.bytes / 1e6:.1f} MB written   ",
        ("ctrl+r stops", pal.dim),
    )
    if recorder.error:
        text.append(f"   {recorder.error}", pal.bad)
    return text


class GoToScreen(ModalScreen[float | None]):
    """Asks where to go in the recording; answers its time, or None.

    Its box has round corners, and ASCII ones on the Linux console (unscoped rules,
    to key on the app's ``-ascii`` class, which a theme switch sets or clears).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    SCOPED_CSS = False
    DEFAULT_CSS = """
    GoToScreen { align: center middle; }
    #goto-box { width: 72; height: auto; border: round $primary; background: $surface; padding: 1 2; }
    App.-ascii #goto-box { border: ascii $primary; }
    """

    def __init__(self, player: ReplayPlayer) -> None:
        super().__init__()
        self.player = player

    def compose(self) -> ComposeResult:
        rec = self.player.recording
        with Vertical(id="goto-box"):
            yield Static(
                f"[b]Go to[/b]: the recording runs from {fmt.date_time(rec.started_at)} to {fmt.clock_time(rec.ended_at)}\n"
                "12:03:41 (clock time), +5m or 90s (from the start), -30s (before the end)"
            )
            yield Input(placeholder="12:03:41", id="goto-input")
            yield Static("", id="goto-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            at = parse_offset(event.value, self.player.recording)
        except ValueError as exc:
            self.query_one("#goto-error", Static).update(Text(str(exc), style="bold"))
            return
        self.dismiss(at)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TapeDeck:
    """The app's replay (if it is one) and its recorder (while ``ctrl+r`` records)."""

    def __init__(self, app: GpuTuiApp, replay: ReplayPlayer | None) -> None:
        self.app = app
        self.replay = replay
        self.recorder: Recorder | None = None
        self.watching = False

    def attach(self) -> None:
        """On mount: start the replay and keep its bar on every screen."""
        if self.replay is not None:
            self._watch_screens()
            self.replay.start()
            for problem in self.replay.problems:
                self.app.notify(problem, severity="error", timeout=30, markup=False)

    def _watch_screens(self) -> None:
        if not self.watching:
            self.watching = True
            self.app.screen_change_signal.subscribe(self.app, self._screen_changed)
            self._screen_changed(self.app.screen)

    def _screen_changed(self, screen: Screen[Any]) -> None:
        if not isinstance(screen, ModalScreen):
            self.app.call_later(self._mount_bar, screen)

    def _mount_bar(self, screen: Screen[Any]) -> None:
        if screen.is_attached and screen.id != "_default" and not screen.query(ReplayBar):
            screen.mount(ReplayBar(self))
        for bar in screen.query(ReplayBar):
            bar.update_bar()

    def allows(self, action: str) -> bool:
        """Replay keys only in a replay, and never while typing; recording only on a live fleet."""
        if action == "replay":
            return self.replay is not None and not isinstance(self.app.focused, Input)
        if action == "record":
            return self.replay is None and self.app.welcome is None
        return True

    def command(self, name: str) -> None:
        player = self.replay
        if player is None:
            return
        if name == "goto":
            self.app.push_screen(GoToScreen(player), lambda at: player.seek(at) if at is not None else None)
            return
        steps = {"back": -STEP_S, "forward": STEP_S, "back_more": -BIG_STEP_S, "forward_more": BIG_STEP_S}
        if name in steps:
            player.seek_by(steps[name])
        elif name in ("start", "end"):
            rec = player.recording
            player.seek(rec.started_at if name == "start" else rec.ended_at)
        else:
            {"toggle": player.toggle, "faster": player.faster, "slower": player.slower}[name]()
        self._refresh()

    def _refresh(self) -> None:
        for bar in self.app.screen.query(ReplayBar):
            bar.update_bar()

    async def toggle_recording(self) -> None:
        """``ctrl+r``: start recording the live fleet, or stop and say what was written."""
        from gputui.record.recorder import Recorder, default_path

        if self.recorder is None:
            path = default_path()
            try:
                self.recorder = Recorder.start(self.app.runner, path, self.app.fleet_title)
            except OSError as exc:
                self.app.notify(f"cannot record to {path}: {exc}", severity="error", timeout=15, markup=False)
                return
            self._watch_screens()
            self.app.notify(f"recording the fleet to {self.recorder.path} (ctrl+r stops)", timeout=10, markup=False)
        else:
            recorder, self.recorder = self.recorder, None
            info = await recorder.close()
            severity: SeverityLevel = "error" if recorder.error else "information"
            self.app.notify(f"recording saved: {info.describe()}", severity=severity, timeout=15, markup=False)
        self._refresh()

    async def close(self) -> None:
        """On unmount: a recording in progress is finished properly (index and all)."""
        if self.recorder is not None:
            await self.recorder.close()
            self.recorder = None
        if self.replay is not None:
            await self.replay.stop()
