"""The connections view: why a host is down, retry, and adding a host."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input

from gputui import config as cfg
from gputui.fleet.store import FleetStore, HostState
from gputui.sources.fleet import from_config
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.add_host import FIELDS, AddHostScreen
from gputui.ui.screens.connections import ConnectionsScreen
from tests.screen_reading import screen_text
from tests.waiting import wait_for

CONFIG = """# lab fleet
[[hosts]]
name = "sim-01"
transport = "local"
sim = "healthy"
gpus = 1
"""


def row(table: DataTable[object], key: str) -> str:
    return " ".join(str(c) for c in table.get_row(key))


async def test_connections_show_state_and_a_host_can_be_added(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    config = cfg.load(path)
    make = from_config(config).source_for
    store = FleetStore()
    app = GpuTuiApp(store, [make(h) for h in config.hosts], config_path=path, source_factory=make)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: store.hosts["sim-01"].sample is not None, "sim-01 to report")
        await pilot.press("c")
        assert isinstance(app.screen, ConnectionsScreen)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: "live" in row(table, "sim-01"), "the sim-01 row")
        assert "simulated" in row(table, "sim-01")
        await pilot.press("a")
        await pilot.click("#f-name")
        await pilot.press(*"gpu-new")
        await pilot.click("#f-address")
        await pilot.press(*"127.0.0.1")
        await pilot.click("#f-port")
        await pilot.press("1")  # nothing listens there: refused at once, on loopback
        await pilot.press("enter")
        await wait_for(pilot, lambda: "gpu-new" in store.hosts, "the new host in the fleet")
        await wait_for(pilot, lambda: store.hosts["gpu-new"].state(store.clock()) is HostState.DOWN, "gpu-new to fail")
        # The table catches up with the store on its own refresh.
        await wait_for(pilot, lambda: table.row_count == 2, "a second row")
        await wait_for(pilot, lambda: "cannot connect to 127.0.0.1" in row(table, "gpu-new"), "gpu-new's error on its row")
    text = path.read_text()
    assert text.startswith(CONFIG)
    assert [h.name for h in cfg.load(path).hosts] == ["sim-01", "gpu-new"]


async def test_at_80x25_the_add_dialog_shows_every_field_says_what_is_wrong_and_stays_open(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    config = cfg.load(path)
    make = from_config(config).source_for
    app = GpuTuiApp(FleetStore(), [make(h) for h in config.hosts], config_path=path, source_factory=make)
    async with app.run_test(size=(80, 25)) as pilot:
        await pilot.press("c", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, AddHostScreen), "the add-host dialog")
        dialog = app.screen
        await pilot.pause()
        parts = [*(f"#f-{key}" for key, _, _ in FIELDS), "#add-error", "#add"]
        hidden = [p for p in parts if not dialog.region.contains_region(dialog.query_one(p).region)]
        assert not hidden, f"off screen at 80x25: {hidden}"
        await pilot.click("#f-name")
        await pilot.press(*"gpu-new")
        await pilot.click("#f-port")
        await pilot.press(*"99999")
        await pilot.click("#add")  # a click lands only on a button that is drawn
        assert "not a port" in screen_text(app) and isinstance(app.screen, AddHostScreen)
        await pilot.click("#f-name")
        await pilot.press("end", "ctrl+u", *"sim-01")  # already in the config: refused
        await pilot.click("#f-port")
        await pilot.press("end", "ctrl+u")
        await pilot.click("#add")
        await pilot.pause()
        assert app.screen is dialog, "the dialog stays open after a refusal"
        message = dialog.query_one("#add-error")
        assert "already configured" in str(message.render())
        assert dialog.region.contains_region(message.region) and "not added" in screen_text(app)
        assert dialog.query_one("#f-name", Input).value == "sim-01"  # what was typed is kept
    assert path.read_text() == CONFIG
