"""``?`` on a small terminal: the screen's own keys first, every key reachable, the box on screen.

At 80x24 the help used to stop at Textual's generic keys (arrows, tab,
copy) before any of the overview's own, could not scroll, and kept a width
of 80 on a 40-column terminal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.help_screen import HelpScreen
from gputui.ui.launch import demo_app
from gputui.ui.screens.overview import OverviewScreen
from tests.screen_reading import screen_rows, static_text
from tests.waiting import wait_for

OVERVIEW_KEYS = ["m", "s", "g", "/"]  # the overview's own (README: "The dashboard")
EVERYWHERE = ["q", "?", "c", "A", "t", "^p"]
GENERIC = ["Focus Next", "Focus Previous", "Copy selected text", "Scroll Left", "Scroll Right", "Page Left"]
LAST = "Press escape to close."


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config and themes out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "config.toml"))


def key_rows(app: GpuTuiApp) -> list[str]:
    """The keys the help lists, in its order: the first word of each indented row."""
    text = static_text(app.screen.query_one("#help-text", Static))
    return [line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.strip()]


def box_on_screen(app: GpuTuiApp) -> bool:
    return app.screen.region.contains_region(app.screen.query_one("#help-box").region)


async def test_the_help_lists_the_overviews_keys_first_and_scrolls_to_the_last_line() -> None:
    app = demo_app(hosts=2, gpus=None, scenario="healthy", seed=0, interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "the overview")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.pause()
        text = static_text(app.screen.query_one("#help-text", Static))
        assert not [g for g in GENERIC if g in text], "Textual's generic keys are left out"
        keys = key_rows(app)
        assert keys[: len(OVERVIEW_KEYS) + 1] == ["⏎", *OVERVIEW_KEYS], keys
        assert set(EVERYWHERE) <= set(keys), keys
        assert keys.index("t") < keys.index("↑"), "moving the cursor comes last"
        shown = "\n".join(screen_rows(app))
        assert all(f"  {k} " in shown for k in OVERVIEW_KEYS), shown
        assert LAST not in shown and box_on_screen(app)
        await pilot.press("end")
        await pilot.pause()
        assert LAST in "\n".join(screen_rows(app)), "the help scrolls to its last line"
        assert box_on_screen(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "escape to close the help")


@pytest.mark.parametrize("size", [(40, 20), (60, 20)])
async def test_the_help_fits_a_narrow_terminal(size: tuple[int, int]) -> None:
    app = demo_app(hosts=2, gpus=None, scenario="healthy", seed=0, interval=0.2)
    async with app.run_test(size=size) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.pause()
        assert box_on_screen(app), app.screen.query_one("#help-box").region
        rows = screen_rows(app)
        assert any("Metric" in row for row in rows)
        await pilot.press("end")
        await pilot.pause()
        assert any(LAST in row for row in screen_rows(app))


async def test_the_triage_help_lists_tab_the_way_to_the_process_list() -> None:
    from gputui.ui.screens.triage_screen import TriageScreen

    app = demo_app(hosts=1, gpus=None, scenario="incident", seed=0, interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the triage on the incident")
        triage = app.screen
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.pause()
        text = static_text(app.screen.query_one("#help-text", Static))
        assert "  tab" in text and "Alerts / processes" in text, text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is triage, "back on the triage")
        before = app.focused
        await pilot.press("tab")
        await wait_for(pilot, lambda: app.focused is not before, "tab to move the focus")
