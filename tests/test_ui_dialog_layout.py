"""The action dialog on small terminals: the confirmation and the buttons stay on screen.

At 80x24 (and 60x20) a preview used to push the typed confirmation, its box
and the Apply/Cancel buttons below the last row, where the host name could
still be typed and applied blind. The form and the preview now scroll inside
the dialog and the footer stays in sight; these tests check what is drawn.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input

from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.action_screen import ActionScreen
from gputui.ui.screens.host_screen import HostScreen
from tests.action_cli import audit
from tests.screen_reading import screen_lines
from tests.ui_apps import AGENT_WAIT_S, make_app, open_allocation, preview, start, status
from tests.waiting import wait_for

SMALL = [(80, 24), (80, 25), (60, 20)]


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config and themes out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "no-config.toml"))


def in_sight(dialog: ActionScreen, widget: Widget) -> bool:
    """Whether all of ``widget`` is drawn: inside the screen and inside the dialog's box."""
    box = dialog.query_one("#action-box")
    region: Region = widget.region
    return bool(widget.display) and dialog.region.contains_region(region) and box.region.contains_region(region)


def out_of_sight(dialog: ActionScreen) -> list[str]:
    """The footer's shown widgets that are not wholly on screen, with where they are."""
    shown = [w for w in dialog.query("#action-buttons Button, #confirm").results(Widget) if w.display]
    return [f"{w.id} at {w.region} on {dialog.region}" for w in shown if not in_sight(dialog, w)]


async def preview_of(pilot: Pilot[None], key: str, tab: str = "3") -> ActionScreen:
    """Open the host, press ``key`` on tab ``tab``, give a reason, and wait for the preview."""
    app = pilot.app
    assert isinstance(app, GpuTuiApp)
    screen = await open_allocation(pilot, app)
    if tab == "4":
        await pilot.press("4")
        procs = screen.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: procs.row_count > 0, "the process table to fill")
    dialog = await start(pilot, key, "fan noise")
    await pilot.pause()
    assert not out_of_sight(dialog), "before the preview"
    await pilot.press("enter")
    await wait_for(pilot, lambda: dialog.phase != "asking", "the host's preview", AGENT_WAIT_S)
    assert dialog.phase == "preview", status(dialog) + preview(dialog)
    await pilot.pause()
    return dialog


@pytest.mark.parametrize("size", SMALL)
async def test_a_drain_preview_keeps_the_confirmation_and_apply_on_screen(tmp_path: Path, size: tuple[int, int]) -> None:
    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=size) as pilot:
        dialog = await preview_of(pilot, "D")
        assert dialog.query_one("#confirm", Input).display
        assert not out_of_sight(dialog)
        assert any("Type 'a'" in line for line in screen_lines(app)), "the confirmation line is drawn"
        await pilot.press("a")
        await pilot.click("#apply")  # a click lands only on a button that is drawn
        await wait_for(pilot, lambda: dialog.phase == "done", "the host's answer", AGENT_WAIT_S)
        assert audit(tmp_path)[-1]["status"] == "applied", status(dialog)
        await pilot.pause()
        assert in_sight(dialog, dialog.query_one("#cancel", Button))
        box, shown = dialog.query_one("#action-box"), dialog.query_one("#action-preview")
        assert shown.region.bottom <= dialog.query_one("#action-foot").region.y, "the outcome's last line is in sight"
        assert box.scroll_y == box.max_scroll_y


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_a_drain_node_preview_scrolls_inside_the_dialog(tmp_path: Path, size: tuple[int, int]) -> None:
    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=size) as pilot:
        dialog = await preview_of(pilot, "N")
        assert "drain-node" in preview(dialog) or "drain node" in preview(dialog).lower()
        assert not out_of_sight(dialog)
        box = dialog.query_one("#action-box")
        shown = dialog.query_one("#action-preview")
        assert box.max_scroll_y > 0, "this preview is longer than the dialog: it scrolls"
        foot = dialog.query_one("#action-foot")
        first_line = shown.region.y + 1  # below the preview's top border
        assert box.content_region.y <= first_line < foot.region.y, "the preview's first line is in sight"
        box.scroll_end(animate=False)
        await pilot.pause()
        assert shown.region.bottom <= foot.region.y and not out_of_sight(dialog), "its last line too"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the dialog to close")


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_kill_dialog_fits_before_and_after_the_preview(tmp_path: Path, size: tuple[int, int]) -> None:
    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=size) as pilot:
        dialog = await preview_of(pilot, "K", tab="4")
        assert dialog.query_one("#confirm", Input).display
        assert not out_of_sight(dialog)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the dialog to close")
    assert audit(tmp_path)[-1]["status"] == "cancelled"
