"""The connections view: why a host is down, retry, and adding a host."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from gputui import config as cfg
from gputui.fleet.store import FleetStore, HostState
from gputui.transport.from_config import LinkFactory
from gputui.ui.app import GpuTuiApp
from gputui.ui.connections import ConnectionsScreen
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
    make = LinkFactory(config)
    store = FleetStore()
    app = GpuTuiApp(store, [make(h) for h in config.hosts], config_path=path, link_factory=make)
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
