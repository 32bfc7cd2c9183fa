"""The console promise (16 colours, ASCII only) on a replay: its bar on every screen and its dialogs.

The every-screen check in test_overview.py looks at a live fleet; a replay adds a
bar to each screen, a go-to dialog and its error, and states (paused, fast, at the
end, damaged) that only a recording has. Operators on a Linux VT found box
corners in the go-to dialog and a Unicode ellipsis where the bar is cut.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandPalette

from gputui.ui.dialogs.help_screen import HelpScreen
from gputui.ui.launch import replay_app
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.widgets.replay_bar import GoToScreen, ReplayBar
from tests.recordings import damage_last_chunk
from tests.screen_reading import screen_text
from tests.waiting import wait_for


@pytest.fixture(autouse=True)
def linux_console(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On the Linux console, with no user config or themes from this machine."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TERM", "linux")
    monkeypatch.delenv("GPUTUI_ASCII", raising=False)


def odd_characters(text: str) -> list[str]:
    return sorted({c for c in text if ord(c) > 127})


def assert_ascii(seen: dict[str, str]) -> None:
    odd = {name: odd_characters(text) for name, text in seen.items() if odd_characters(text)}
    assert not odd, f"not ASCII: {odd}"


@pytest.mark.parametrize("size", [(160, 40), (80, 24)])  # 80 columns: the bar is cut
async def test_on_the_console_every_replay_screen_and_dialog_is_ascii(recording: Path, size: tuple[int, int]) -> None:
    app = replay_app(recording)
    seen: dict[str, str] = {}
    async with app.run_test(size=size) as pilot:
        assert app.ascii
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await wait_for(pilot, lambda: all(r.sample for r in app.store.hosts.values()), "every host's first sample")
        seen["overview, playing"] = screen_text(app)
        await pilot.press("space", "plus", "plus")
        await wait_for(pilot, lambda: app.tape.replay is not None and app.tape.replay.speed == 4, "4x")
        seen["overview, paused at 4x"] = screen_text(app)
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, GoToScreen), "the go-to dialog")
        await pilot.pause()
        seen["go-to dialog"] = screen_text(app)
        await pilot.press("x", "enter")
        await wait_for(pilot, lambda: "is not a time" in screen_text(app), "the go-to error")
        seen["go-to error"] = screen_text(app)
        app.theme = "gputui-dark"  # and back: the dialog's border and the bar follow the theme
        await pilot.pause()
        assert not app.ascii
        app.theme = "gputui-console"
        await pilot.pause()
        seen["go-to dialog after a theme switch and back"] = screen_text(app)
        await pilot.press("escape", "end")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "the dialog to close")
        seen["overview, at the end"] = screen_text(app)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        seen["help"] = screen_text(app)
        await pilot.press("escape", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen) and bool(app.screen.query(ReplayBar)), "host bar")
        for tab in "1234":
            await pilot.press(tab)
            await pilot.pause()
            seen[f"host tab {tab}"] = screen_text(app)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.pause()
        seen["palette over the replay"] = screen_text(app)
    assert_ascii(seen)
    assert "REPLAY" in seen["overview, playing"] and "|| paused 4x" in seen["overview, paused at 4x"]
    assert "Go to" in seen["go-to dialog"] and "'x' is not a time" in seen["go-to error"]


async def test_on_the_console_a_cut_replay_bar_ends_in_ascii(recording: Path) -> None:
    """At 80 columns the bar is longer than the line: it is cut, without a Unicode ellipsis."""
    app = replay_app(recording)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        bar = app.screen.query_one(ReplayBar)
        line = "".join(segment.text for segment in bar.render_line(0))
        assert "REPLAY" in line and "0:00 / 5:00" in line  # the part that fits is there
        assert not odd_characters(line), odd_characters(line)


async def test_on_the_console_the_go_to_dialog_has_an_ascii_border(recording: Path) -> None:
    app = replay_app(recording)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, GoToScreen), "the go-to dialog")
        await pilot.pause()
        box = app.screen.query_one("#goto-box")
        assert box.styles.border_top[0] == "ascii"
        lines = [line.strip() for line in screen_text(app).splitlines() if line.strip()]
    assert lines[0] == "+" + "-" * (box.outer_size.width - 2) + "+", lines[0]  # the box's top edge
    assert not odd_characters("\n".join(lines)), odd_characters("\n".join(lines))


async def test_a_damaged_replay_on_the_console_is_ascii(recording: Path) -> None:
    damage_last_chunk(recording)
    app = replay_app(recording)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query(ReplayBar)), "the replay bar")
        await wait_for(pilot, lambda: "damaged" in screen_text(app), "the damage notice")
        text = screen_text(app)
    assert not odd_characters(text), odd_characters(text)
