"""The dashboard as an operator meets it: what is on screen, and what the keys do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

import gputui.sim.processes
from gputui.agent.sampler import Sampler
from gputui.fleet.store import FleetStore
from gputui.frames import parse_frame
from gputui.sim.nvml import SimNvml
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.help_screen import HelpScreen
from gputui.ui.launch import demo_app
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.screens.triage_screen import TriageScreen
from gputui.ui.screens.welcome import WelcomeScreen
from gputui.ui.widgets.fleet_view import FleetView
from tests.screen_reading import cells, screen_lines, screen_text, static_text, summary
from tests.ui_apps import Host, frozen_store, open_screen
from tests.waiting import wait_for

SIZE = (150, 40)
HOSTS = ["gpu-01", "gpu-02", "gpu-03", "gpu-04", "gpu-05"]


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config and themes out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "config.toml"))


def fleet_lines(app: GpuTuiApp) -> list[str]:
    view = app.screen.query_one(FleetView)
    return [view.render_line(y).text for y in range(len(view.names))]


def row_text(table: DataTable[object], key: str) -> str:
    return " ".join(str(cell) for cell in table.get_row(key))


def all_sampled(app: GpuTuiApp) -> bool:
    return bool(app.store.hosts) and all(r.sample is not None for r in app.store.hosts.values())


async def open_host(pilot: Pilot[None], *keys: str) -> HostScreen:
    await pilot.press(*keys, "enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HostScreen), "the host screen to open")
    screen = pilot.app.screen
    assert isinstance(screen, HostScreen)
    # The tabs mount their panes a moment after the screen: query, do not query_one.
    await wait_for(pilot, lambda: any(t.row_count for t in screen.query("#gpus").results(DataTable)), "the GPU table to fill")
    return screen


async def test_overview_shows_every_host_live() -> None:
    app = demo_app(hosts=5, gpus=None, scenario="fleet", seed=0, interval=0.2)
    app.triage_first = False  # about the overview: gpu-03's lost GPU would open the triage over it
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all_sampled(app), "every host's first sample")
        assert app.screen.query_one(FleetView).names == HOSTS
        await wait_for(
            pilot,
            lambda: "5 live" in summary(app) and all("live" in line for line in fleet_lines(app)),
            "the summary and every host's line to read live",
        )
        for name, line in zip(HOSTS, fleet_lines(app), strict=True):
            assert name in line


async def test_enter_opens_the_selected_host_and_escape_returns() -> None:
    app = demo_app(hosts=5, gpus=None, scenario="fleet", seed=0, interval=0.2)
    # This test is about the overview, not the triage it would open on: gpu-03's lost GPU alerts at
    # once, and a health pass just before the keys took them to the triage (enter opened gpu-03).
    app.triage_first = False
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all_sampled(app), "every host's first sample")
        screen = await open_host(pilot, "down")
        assert screen.host == "gpu-02"
        await pilot.press("4")  # the processes tab: hidden tabs are not kept up to date
        gpus = screen.query_one("#gpus", DataTable)
        procs = screen.query_one("#procs", DataTable)

        def store_gpus() -> set[str]:
            return {str(g.index) for g in app.store.hosts["gpu-02"].gpus()}

        def store_procs() -> set[str]:
            return {f"{g.index}:{p.pid}" for g in app.store.hosts["gpu-02"].gpus() for p in g.processes}

        await wait_for(
            pilot,
            lambda: {str(k.value) for k in procs.rows} == store_procs(),
            "the process table to list exactly the store's processes",
        )
        assert store_procs(), "the mixed demo host should be running jobs"
        # A row per GPU, and one per MIG instance of the A100 80GB in MIG mode.
        assert {str(k.value) for k in gpus.rows} == store_gpus() | {"3/0", "3/1", "3/2"}
        assert gpus.row_count == len(app.store.hosts["gpu-02"].gpus()) + 3 == 7
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "escape to return to the overview")


async def test_lost_gpu_reads_lost_on_the_host_screen() -> None:
    app = demo_app(hosts=2, gpus=None, scenario="incident", seed=0, interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all_sampled(app), "every host's first sample")
        # The incident demo opens on the triage (tests/test_triage_ui.py); this test starts from the overview.
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the triage screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "escape to the overview")
        screen = await open_host(pilot)
        assert screen.host == "gpu-01"
        table = screen.query_one("#gpus", DataTable)
        assert "LOST" in row_text(table, "5")
        assert "LOST" not in row_text(table, "4")


async def test_command_line_with_brackets_is_shown_verbatim() -> None:
    store = FleetStore(clock=lambda: 0.0)
    sim = SimNvml("healthy", seed=1, processes="synthetic", clock=lambda: 0.0)
    sampler = Sampler(sim, host="h1", describe=sim.describe_process, clock=lambda: 0.0)
    store.add_host("h1")
    store.apply("h1", parse_frame(json.dumps(sampler.hello(1.0))))
    frame = sampler.sample()
    frame["gpus"][0]["processes"][0]["command"] = "sed s/[/]/x/ data.txt"
    store.apply("h1", parse_frame(json.dumps(frame)))
    app = GpuTuiApp(store=store, sources=[])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_host(pilot)
        await pilot.press("4")
        procs = screen.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: procs.row_count > 0, "the process table to fill")
        lines = [procs.render_line(y).text for y in range(procs.row_count + 1)]
        assert any("sed s/[/]/x/ data.txt" in line for line in lines), lines


async def test_q_quits() -> None:
    app = demo_app(hosts=2, gpus=None, scenario="healthy", seed=0, interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all_sampled(app), "every host's first sample")
        assert app.is_running
        assert app.return_code is None
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "q to stop the app")
        assert app.return_code == 0


async def test_question_mark_lists_the_keys() -> None:
    app = demo_app(hosts=2, gpus=None, scenario="healthy", seed=0, interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        text = static_text(app.screen.query_one("#help-text", Static))
        assert "Open host" in text
        assert "Quit" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "escape to close the help")


async def test_welcome_screen_without_config() -> None:
    path = Path("/nonexistent/config.toml")
    app = GpuTuiApp(welcome=(path, None))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen), "the welcome screen")
        text = static_text(app.screen.query_one("#welcome", Static))
        assert "gputui demo" in text
        assert str(path) in text


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def feed(store: FleetStore, sampler: Sampler) -> None:
    """A hello and one sample, through JSON and the parser as on any link."""
    store.add_host(sampler.host)
    store.apply(sampler.host, parse_frame(json.dumps(sampler.hello(1.0))))
    store.apply(sampler.host, parse_frame(json.dumps(sampler.sample())))


async def test_quiet_host_turns_stale() -> None:
    clock = FakeClock()
    store = FleetStore(clock=clock)
    sim = SimNvml("healthy", seed=1, processes="synthetic")
    feed(store, Sampler(sim, host="quiet-01", describe=sim.describe_process))
    app = GpuTuiApp(store=store, sources=[])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "1 live" in summary(app), "the summary to count the host live")
        assert "live" in fleet_lines(app)[0]
        clock.now += 10.0
        await wait_for(pilot, lambda: "1 stale" in summary(app), "the summary to count the host stale")
        line = fleet_lines(app)[0]
        assert "quiet-01" in line
        assert "stale" in line
        assert "live" not in line
        assert "10s" in line
        assert "0 live" in summary(app)
    sim.close()


# -- snapshots: hosts sampled on fixed clocks, so every run draws the same screen --

FIXED_WALL = 1_700_000_000.0


def frozen_app(monkeypatch: pytest.MonkeyPatch) -> GpuTuiApp:
    """Three hosts (healthy, mixed, incident) sampled twice, one simulated second apart.

    Process start times read ``time.time()`` in the simulator, and the host screen's "Running"
    column the app's wall clock: both are fixed, so the ages are the same on every run (jobs
    shown as started 1h ago).
    """
    monkeypatch.setattr(gputui.sim.processes, "time", SimpleNamespace(time=lambda: FIXED_WALL))
    store = FleetStore(clock=lambda: 50.0)
    for i, scenario in enumerate(("healthy", "mixed", "incident")):
        sim = SimNvml(scenario, seed=0, processes="synthetic", clock=lambda: 0.0, host_no=i)
        tick = FakeClock(0.0)
        name, source = f"node-{i + 1}", f"sim:{scenario}"
        sampler = Sampler(sim, host=name, source=source, describe=sim.describe_process, clock=tick, wall=lambda: FIXED_WALL)
        feed(store, sampler)
        # One simulated second later: rates and throttle counters now have an interval.
        sim.advance(1)
        tick.now += 1.0
        store.apply(sampler.host, parse_frame(json.dumps(sampler.sample())))
    return GpuTuiApp(store=store, sources=[], title="snapshot fleet", wall_clock=lambda: FIXED_WALL + 3600.0)


def test_snapshot_overview(snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch) -> None:
    assert snap_compare(frozen_app(monkeypatch), terminal_size=SIZE)


def test_snapshot_host_screen(snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch) -> None:
    async def open_incident_host(pilot: Pilot[None]) -> None:
        screen = await open_host(pilot, "end")
        assert screen.host == "node-3"

    assert snap_compare(frozen_app(monkeypatch), terminal_size=SIZE, run_before=open_incident_host)


# -- small things the operator reads ---------------------------------------------------


async def test_the_welcome_footer_shows_only_keys_that_work_there() -> None:
    app = GpuTuiApp(welcome=(Path("/nonexistent/config.toml"), None))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen), "the welcome screen")
        await pilot.pause()
        text = screen_text(app)
        assert "Quit" in text
        for word in ("Connections", "Audit log", "Triage"):
            assert word not in text, f"the welcome footer offers {word!r}, which does nothing there"


async def palette_text(pilot: Pilot[None], typed: str) -> str:
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    app = pilot.app
    assert isinstance(app, GpuTuiApp)
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
    await pilot.press(*typed)
    options = app.screen.query_one(OptionList)
    await wait_for(pilot, lambda: options.option_count > 0 and "Theme" in str(options.get_option_at_index(0).prompt), "hits")
    await pilot.pause()
    return screen_text(app)


async def test_the_palette_says_where_a_theme_choice_goes(tmp_path: Path) -> None:
    async with GpuTuiApp(frozen_store(2), []).run_test(size=SIZE) as pilot:  # the demo: no config file
        text = await palette_text(pilot, "theme gputui-light")
        assert "for this session: there is no config file" in text and "saved to the config" not in text
    config = tmp_path / "config.toml"
    config.write_text('theme = "gputui-dark"\n')
    async with GpuTuiApp(frozen_store(2), [], config_path=config).run_test(size=SIZE) as pilot:
        assert "saved to the config" in await palette_text(pilot, "theme gputui-light")


def one_process_store() -> FleetStore:
    """One host whose frame lists exactly one process."""
    store = FleetStore(clock=lambda: 50.0)
    sim = SimNvml("healthy", seed=0, processes="synthetic", clock=lambda: 0.0)
    sampler = Sampler(sim, host="solo", describe=sim.describe_process, clock=FakeClock(0.0))
    store.add_host("solo")
    store.apply("solo", parse_frame(json.dumps(sampler.hello(1.0))))
    sample = sampler.sample()
    first = next(g for g in sample["gpus"] if g.get("processes"))
    for g in sample["gpus"]:
        g["processes"] = first["processes"][:1] if g is first else []
    store.apply("solo", parse_frame(json.dumps(sample)))
    return store


async def test_one_process_is_one_process() -> None:
    app = GpuTuiApp(one_process_store(), [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_host(pilot)
        await pilot.press("4")
        summary_line = screen.query_one("#proc-summary", Static)
        await wait_for(pilot, lambda: static_text(summary_line).startswith("1 process "), "the processes tab's count")


@pytest.mark.parametrize("samples", [8, 120])  # the first seconds, and a full minute and more
async def test_the_newest_utilisation_samples_are_on_screen_at_100_columns(samples: int) -> None:
    host = Host(samples=samples)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_screen(pilot, host)
        table = screen.query_one("#gpus", DataTable)

        def whole_sparkline_seen() -> bool:
            spark = cells(table, "0")[-1].rstrip()
            return bool(spark.strip()) and spark in "".join(screen_lines(app))

        # The column is fitted on the next tick to the room the other columns leave.
        await wait_for(pilot, whole_sparkline_seen, f"{samples} samples: GPU 0's whole sparkline on screen", 5.0)
