"""The dashboard on a recording, and recording from the dashboard, as an operator uses them."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.widgets import DataTable

import gputui.sim.processes
from gputui.fleet.store import HostState
from gputui.record import format as fmt
from gputui.record.player import ReplayPlayer
from gputui.record.reader import Recording
from gputui.record.recorder import recordings_dir
from gputui.render import age_words
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.help_screen import HelpScreen
from gputui.ui.launch import demo_app, replay_app
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.widgets.replay_bar import GoToScreen, ReplayBar
from tests.recordings import EPOCH, damage_last_chunk, write_sim_recording
from tests.screen_reading import cells
from tests.waiting import wait_for

SIZE = (160, 40)


@pytest.fixture(autouse=True)
def no_user_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def bar_text(app: GpuTuiApp) -> str:
    bar = app.screen.query_one(ReplayBar)
    return "".join(segment.text for segment in bar.render_line(0))


def player(app: GpuTuiApp) -> ReplayPlayer:
    assert app.tape.replay is not None
    return app.tape.replay


def offset(app: GpuTuiApp) -> float:
    p = player(app)
    return p.now() - p.recording.started_at


async def test_a_replay_says_replay_on_every_screen(recording: Path) -> None:
    app = replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await wait_for(pilot, lambda: all(r.sample for r in app.store.hosts.values()), "every host's first sample")
        text = bar_text(app)
        assert "REPLAY" in text and "playing 1×" in text and "incident.gtrec" in text and "not live" in text
        assert fmt.date_time(player(app).recording.started_at)[:10] in text
        assert all(r.state(app.store.clock()) is HostState.LIVE for r in app.store.hosts.values())
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, HostScreen) and bool(app.screen.query(ReplayBar)), "the bar on the host screen"
        )
        assert "REPLAY" in bar_text(app)


async def test_space_pauses_and_resumes(recording: Path) -> None:
    app = replay_app(recording, speed=16)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: offset(app) > 2, "the replay to move on")
        await pilot.press("space")
        paused_at = offset(app)
        version = app.store.version
        await wait_for(pilot, lambda: "paused" in bar_text(app), "the bar to say paused")
        for _ in range(5):
            await pilot.pause(0.05)
        assert offset(app) == paused_at and app.store.version == version, "nothing moves while paused"
        await pilot.press("space")
        await wait_for(pilot, lambda: offset(app) > paused_at + 1, "the replay to play on")
        assert "playing" in bar_text(app)


async def test_plus_and_minus_change_the_speed(recording: Path) -> None:
    app = replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await pilot.press("plus", "plus")
        await wait_for(pilot, lambda: "4×" in bar_text(app), "4× in the bar")
        await pilot.press(*["plus"] * 5)
        assert player(app).speed == 16
        await pilot.press(*["minus"] * 8)
        assert player(app).speed == 0.5
        await wait_for(pilot, lambda: "0.5×" in bar_text(app), "0.5× in the bar")


async def test_arrows_home_end_and_a_typed_time_seek(recording: Path) -> None:
    app = replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await pilot.press("space")  # paused: positions are exact from here
        paused_at = offset(app)  # how far it had played by then (half a second and more on a loaded machine)
        await pilot.press("right", "right", "shift+right")
        assert offset(app) == pytest.approx(paused_at + 80)
        await pilot.press("left")
        assert offset(app) == pytest.approx(paused_at + 70)
        await pilot.press("end")
        p = player(app)
        assert p.now() == p.recording.ended_at and p.at_end
        await wait_for(pilot, lambda: "end" in bar_text(app) and "5:00 / 5:00" in bar_text(app), "the bar at the end")
        await pilot.press("home")
        assert offset(app) == 0
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, GoToScreen), "the go-to dialog")
        await pilot.press("9", "9", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, GoToScreen), "the dialog to close")
        assert offset(app) == pytest.approx(99)
        at = p.recording.started_at + 99
        for record in app.store.hosts.values():
            assert record.last_frame_at is not None and at - 1 < record.last_frame_at <= at


async def test_a_typed_time_that_is_not_one_is_explained(recording: Path) -> None:
    app = replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, GoToScreen), "the go-to dialog")
        await pilot.press("x", "enter")
        error = app.screen.query_one("#goto-error")
        assert "'x' is not a time" in str(error.render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "the dialog to close")


async def test_the_replay_keys_are_in_the_help_only_in_a_replay(recording: Path) -> None:
    app = replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        text = str(app.screen.query_one("#help-text").render())
        assert "Play/pause" in text and "Back 60 s" in text and "Go to time" in text
        assert "ctrl+r" not in text.split("\n\n")[1], "a replay cannot be recorded"
    live = demo_app(hosts=2, gpus=2, scenario="healthy", seed=0, interval=0.2)
    async with live.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(live.screen, HelpScreen), "the help")
        text = str(live.screen.query_one("#help-text").render())
        assert "Play/pause" not in text and "Record" in text


async def test_damage_is_shown_in_the_replay(recording: Path) -> None:
    damage_last_chunk(recording)
    app = replay_app(recording)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        assert "damaged" in bar_text(app)
        assert any("the last chunk is damaged" in str(n.message) for n in app._notifications)


async def test_ctrl_r_records_the_live_fleet_to_a_file_that_replays(tmp_path: Path) -> None:
    app = demo_app(hosts=3, gpus=2, scenario="fleet", seed=1, interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all(r.sample for r in app.store.hosts.values()), "samples from every host")
        await pilot.press("ctrl+r")
        recorder = app.tape.recorder
        assert recorder is not None
        path = recorder.path
        assert path.parent == recordings_dir() == tmp_path / "state" / "gputui" / "recordings"
        assert any(f"recording the fleet to {path}" in str(n.message) for n in app._notifications)
        await wait_for(pilot, lambda: "REC" in bar_text(app), "the REC bar")
        start = {n: r.sample.seq for n, r in app.store.hosts.items() if r.sample}
        await wait_for(
            pilot, lambda: all(r.sample and r.sample.seq >= start[n] + 5 for n, r in app.store.hosts.items()), "5 more samples"
        )
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("recording saved" in str(n.message) for n in app._notifications), "the saved notice")
        assert app.tape.recorder is None
        await wait_for(pilot, lambda: not app.screen.query_one(ReplayBar).display, "the REC bar to go")
    rec = Recording.open(path)
    assert rec.complete and rec.problems() == []
    hosts = {e.host for e in rec.entries()}
    assert hosts == {"gpu-01", "gpu-02", "gpu-03"}
    replay = ReplayPlayer(rec)
    replay.seek(rec.ended_at)
    for record in replay.store.hosts.values():
        assert record.hello is not None, "the keyframe gives a host's hello, sent before the recording began"
        assert record.sample is not None and len(record.gpus()) == 2


async def test_a_replays_processes_have_run_as_long_as_they_had_then(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The processes tab of a replay says how long each process had run at the recording's
    time, not how long ago it started from today (here, weeks after the recording)."""
    # The simulated hosts' processes start on the recording's clock, as a real host's do on its own.
    monkeypatch.setattr(gputui.sim.processes, "time", SimpleNamespace(time=lambda: EPOCH, monotonic=time.monotonic))
    path = tmp_path / "weeks-ago.gtrec"
    write_sim_recording(path, hosts=1, seconds=60)
    app = replay_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all(r.sample for r in app.store.hosts.values()), "the host's first sample")
        await pilot.press("space")
        await wait_for(pilot, lambda: "paused" in bar_text(app), "the replay paused")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the host screen")
        await pilot.press("4")
        table = app.screen.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0, "the processes")
        record = next(iter(app.store.hosts.values()))
        then = player(app).now()
        want = {f"{g.index}:{p.pid}": age_words(then - p.started_at) for g in record.gpus() for p in g.processes if p.started_at}
        column = [str(c.key.value) for c in table.ordered_columns].index("running")
        got = {str(row.key.value): cells(table, str(row.key.value))[column] for row in table.ordered_rows}
        assert want and got == want
        assert time.time() - then > 86_400 and all(not words.endswith("h") or float(words[:-1]) < 24 for words in got.values())
