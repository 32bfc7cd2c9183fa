"""The kill dialog's SIGKILL box says whether it is ticked, without colour.

Textual's checkbox draws ``X`` ticked or not and tells them apart by colour
only; on the Linux console both read ``[X]``. The box now draws ``[X]`` or
``[ ]`` (``▐X▌`` or ``▐ ▌`` elsewhere) and its label ends in yes or no.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Checkbox

from gputui.actions.model import Target
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.action_screen import ActionScreen, Draft
from tests.test_ui_actions import make_app
from tests.waiting import wait_for


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config and themes out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "no-config.toml"))


async def kill_dialog(pilot: Pilot[None], app: GpuTuiApp) -> Checkbox:
    assert app.actions is not None
    app.push_screen(ActionScreen(app.actions, Draft("kill", (Target("a", pid=4242),), "pid 4242 python train.py")))
    await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen), "the kill dialog")
    await pilot.pause()
    return app.screen.query_one("#kill-after", Checkbox)


CELL = 12.2  # the width of one cell in Textual's SVG screenshots
RUN = re.compile(r'<text [^>]*x="([0-9.]+)"[^>]*clip-path="url\(#[^)]*-line-([0-9]+)\)">(.*?)</text>')


def screen_rows(app: App[Any]) -> list[str]:
    """The screen row by row, as the terminal shows it: each run of cells put at its column."""
    rows: dict[int, list[str]] = {}
    for x, y, text in RUN.findall(app.export_screenshot()):
        row = rows.setdefault(int(y), [" "] * app.size.width)
        for i, char in enumerate(html.unescape(text).replace("\xa0", " ")):
            row[round(float(x) / CELL) + i] = char
    return ["".join(rows.get(y, [])) for y in range(app.size.height)]


def drawn(app: GpuTuiApp) -> str:
    """The screen's row that shows the box."""
    return next(row for row in screen_rows(app) if "SIGKILL" in row)


@pytest.mark.parametrize(
    ("theme", "off", "on"),
    [("gputui-console", "[ ]", "[X]"), ("gputui-dark", "▐ ▌", "▐X▌")],
)
async def test_the_sigkill_box_shows_its_state_without_colour(tmp_path: Path, theme: str, off: str, on: str) -> None:
    app = make_app(tmp_path, "enabled = true", theme=theme)
    async with app.run_test(size=(100, 30)) as pilot:
        box = await kill_dialog(pilot, app)
        unticked = drawn(app)
        assert f"{off} SIGKILL if SIGTERM is ignored: no " in unticked, unticked
        await pilot.click("#kill-after")
        await wait_for(pilot, lambda: box.value, "the box to be ticked")
        await pilot.pause()
        ticked = drawn(app)
        assert f"{on} SIGKILL if SIGTERM is ignored: yes " in ticked, ticked
        await pilot.click("#kill-after")
        await wait_for(pilot, lambda: not box.value, "the box to be cleared")
        await pilot.pause()
        assert drawn(app) == unticked
