"""The kill dialog's SIGKILL box says whether it is ticked, without colour.

Textual's checkbox draws ``X`` ticked or not and tells them apart by colour
only; on the Linux console both read ``[X]``. The box now draws ``[X]`` or
``[ ]`` (``▐X▌`` or ``▐ ▌`` elsewhere) and its label ends in yes or no.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox

from gputui.actions.model import Target
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.action_screen import ActionScreen, Draft
from tests.screen_reading import screen_rows
from tests.ui_apps import make_app
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
