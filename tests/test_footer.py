"""The key footer at 80 columns: whole keys, never one drawn over by the palette hint.

Textual's footer docked its "^p palette" hint over the last bindings, so at
80 columns an operator read "? Helctrl+p palette" on the triage screen and a
cut "c" on the overview. The palette is now a binding like the others.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from textual.pilot import Pilot

from gputui.ui.app import GpuTuiApp
from gputui.ui.launch import demo_app
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.screens.triage_screen import TriageScreen
from tests.waiting import wait_for


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "no-config.toml"))


def bottom_row(app: GpuTuiApp) -> str:
    """The last row of the screen as drawn, from Textual's own export."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(r'<text [^>]*x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        rows.setdefault(float(y), []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    return "".join(text for _, text in sorted(rows[max(rows)]))


def shown_keys(app: GpuTuiApp) -> set[str]:
    """ "key label" for every binding the footer may show on this screen."""
    return {
        f"{app.get_key_display(active.binding)} {active.binding.description}"
        for active in app.active_bindings.values()
        if active.binding.show
    }


async def footer_is_whole_keys(pilot: Pilot[None], app: GpuTuiApp, where: str) -> None:
    await pilot.pause()
    items = re.split(r" {2,}", bottom_row(app).strip())
    keys = shown_keys(app)
    assert items and items[0], f"{where}: an empty footer"
    for item in items[:-1]:
        assert item in keys, f"{where}: {item!r} in the footer is not a whole key ({sorted(keys)})"
    last = items[-1]
    assert any(key.startswith(last) for key in keys), f"{where}: the footer ends in {last!r}, not a key cut at the edge"


async def test_at_80_columns_every_footer_shows_whole_keys_and_the_palette_draws_over_none() -> None:
    app = demo_app(hosts=2, gpus=None, scenario="incident", seed=0, interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the triage screen")
        await footer_is_whole_keys(pilot, app, "triage")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "the overview")
        await footer_is_whole_keys(pilot, app, "overview")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the host screen")
        await footer_is_whole_keys(pilot, app, "host")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: type(app.screen).__name__.endswith("Palette"), "the palette from ctrl+p")
