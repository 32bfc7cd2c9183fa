"""The overview's heat map, sort, grouping and filter, as keys drive them."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from pathlib import Path

import pytest
from textual.command import CommandPalette
from textual.strip import Strip
from textual.widgets import Input, Static

from gputui.fleet.store import FleetStore
from gputui.health.model import Severity
from gputui.sources.demo import host_names
from gputui.ui.app import HEALTH_AFTER_REFRESH_S, GpuTuiApp
from gputui.ui.launch import demo_app
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.widgets.fleet_order import arrange
from gputui.ui.widgets.fleet_view import DRAW_AHEAD_LINES, FleetView
from gputui.ui.widgets.heatmap import CELL_W
from tests.screen_reading import screen_text
from tests.ui_apps import fixed, frozen_store
from tests.waiting import wait_for

SIZE = (160, 40)


def line(view: FleetView, row: int) -> str:
    return view.render_line(row - int(view.scroll_offset.y)).text


async def test_m_cycles_the_metric_the_cells_show() -> None:
    store = frozen_store(3)
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:
        view = app.screen.query_one(FleetView)
        host = store.hosts["gpu-01"]
        g0 = host.gpus()[0]
        assert f"{g0.util_pct:>3} " in line(view, 0)
        await pilot.press("m")
        assert view.metric == "mem"
        assert g0.mem_pct is not None and f"{round(g0.mem_pct):>3} " in line(view, 0)
        await pilot.press("m")
        assert g0.temp_c is not None and f"{g0.temp_c:>3} " in line(view, 0)
        assert "temperature" in str(app.screen.query_one("#columns", Static).content)
        await pilot.press("m", "m")
        assert view.metric == "util"


def has_cursor(view: FleetView, row: int) -> bool:
    """Whether the row's host name is drawn in the cursor's colours (a heat cell may share its background)."""
    assert view.palette is not None
    name = next(seg for seg in view.render_line(row) if seg.text.startswith("gpu-"))
    return name.style is not None and name.style.bgcolor == view.palette.cursor.bgcolor


async def test_a_drawn_line_shows_new_data_at_the_next_refresh_and_the_cursor_at_once() -> None:
    """Lines are kept between refreshes (FleetView.drawn): a kept line must never outlive what it shows."""
    store = frozen_store(3)
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:
        view = app.screen.query_one(FleetView)
        record = store.hosts["gpu-01"]
        assert record.sample is not None
        gpus = [g.model_copy(update={"util_pct": 37 if g.index == 0 else g.util_pct}) for g in record.sample.gpus]
        assert line(view, 0).split()[:4] == ["gpu-01", "live", "0s", str(record.gpus()[0].util_pct)]  # GPU 0's cell
        assert record.gpus()[0].util_pct != 37
        store.apply("gpu-01", record.sample.model_copy(update={"gpus": gpus, "seq": record.sample.seq + 1}))
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        screen.update_view()  # the overview's refresh, as its timer calls it
        assert line(view, 0).split()[:4] == ["gpu-01", "live", "0s", "37"]
        assert has_cursor(view, 0) and not has_cursor(view, 1)
        await pilot.press("down")
        assert has_cursor(view, 1) and not has_cursor(view, 0)


async def test_a_refresh_draws_the_visible_lines_a_few_per_turn_and_the_screen_shows_the_new_data() -> None:
    """The overview draws its lines ahead of the compositor, a share per turn of the event loop:
    all of them in the compositor's one turn held keystrokes up at 4,096 hosts (fleet_view.py).
    Whoever draws them, no turn draws more than its share, and the screen shows the refresh's data."""
    store = frozen_store(120)
    app = GpuTuiApp(store, [])
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        view, screen = app.screen.query_one(FleetView), app.screen
        assert isinstance(screen, OverviewScreen)
        name = next(iter(store.hosts))
        record = store.hosts[name]
        assert record.sample is not None and record.gpus()[0].util_pct != 37
        gpus = [g.model_copy(update={"util_pct": 37 if g.index == 0 else g.util_pct}) for g in record.sample.gpus]
        store.apply(name, record.sample.model_copy(update={"gpus": gpus, "seq": record.sample.seq + 1}))
        per_turn, draw = [0], view._draw

        def counted(index: int, scroll_x: int, width: int, focused: bool) -> Strip:
            per_turn[-1] += 1
            return draw(index, scroll_x, width, focused)

        view._draw = counted  # type: ignore[method-assign]
        screen.update_view()  # the overview's refresh, as its timer calls it
        for _ in range(100):  # until the lines are drawn (the overview's timer may start them again)
            per_turn.append(0)
            await asyncio.sleep(0)  # one turn of the loop each: what is counted, not a wait for something
            if view.drawing is None:
                break
        view._draw = draw  # type: ignore[method-assign]
        await pilot.pause()  # the compositor's redraw, whenever it comes
        # Every visible line drawn (twice where the overview's own timer refreshed meanwhile).
        assert sum(per_turn) >= view.size.height > DRAW_AHEAD_LINES
        assert max(per_turn) <= DRAW_AHEAD_LINES
        assert re.search(rf"{name} +live +0s +37 ", screen_text(app))


async def test_s_sorts_worst_first_and_keeps_the_cursor_on_its_host() -> None:
    store = frozen_store(6)
    store.mark_down("gpu-04", "connection refused")
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:
        view = app.screen.query_one(FleetView)
        await pilot.press("down", "down")
        assert view.selected == "gpu-03"
        await pilot.press("s")  # by state: down first
        assert view.sort == "state"
        assert view.names[0] == "gpu-04"
        assert view.selected == "gpu-03"
        await pilot.press("s", "s")  # by hottest GPU
        assert view.sort == "temp"
        hottest = [max(g.temp_c or 0 for g in store.hosts[n].gpus()) for n in view.names]
        assert hottest == sorted(hottest, reverse=True)


async def test_g_groups_by_config_group_then_by_tag() -> None:
    store = frozen_store(4, tags=lambda i: ("rack-a",) if i < 2 else ("rack-b",))
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:
        view = app.screen.query_one(FleetView)
        await pilot.press("g")
        assert [r.title for r in view.rows if r.host is None] == ["infer", "train"]
        assert "infer (2)" in line(view, 0)
        await pilot.press("g")
        assert [r.title for r in view.rows if r.host is None] == ["rack-a", "rack-b"]
        await pilot.press("g")
        assert all(r.host is not None for r in view.rows)


async def test_slash_filters_by_name_tag_model_and_user_and_escape_clears() -> None:
    store = frozen_store(8)
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:
        view = app.screen.query_one(FleetView)
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.display and box.has_focus
        await pilot.press(*"A100")
        await wait_for(pilot, lambda: view.needle == "A100", "the filter to apply")
        assert view.names and all(
            any("A100" in (g.name or "") for g in store.hosts[n].hello.gpus)  # type: ignore[union-attr]
            for n in view.names
        )
        assert len(view.names) < 8
        await pilot.press("escape")
        assert view.needle == "" and len(view.names) == 8 and not box.display
        user = store.hosts["gpu-01"].gpus()[0].processes[0].user
        assert user is not None
        await pilot.press("slash", *user, "enter")
        assert view.has_focus and view.needle == user
        assert "gpu-01" in view.names


def test_1024_hosts_are_drawn_without_a_widget_per_host_or_gpu() -> None:
    store = frozen_store(16)
    big = FleetStore(clock=fixed)
    for i in range(1024):  # the same frames under 1,024 names
        src = store.hosts[host_names(16)[i % 16]]
        name = f"node-{i:04d}"
        big.add_host(name)
        assert src.hello is not None and src.sample is not None
        big.apply(name, src.hello)
        big.apply(name, src.sample)
    rows = arrange(big)
    assert len(rows) == 1024

    async def run() -> tuple[int, int, str]:
        app = GpuTuiApp(big, [])
        async with app.run_test(size=SIZE):
            view = app.screen.query_one(FleetView)
            widgets = len(list(app.screen.walk_children()))
            return widgets, view.virtual_size.height, line(view, 0)

    import asyncio

    widgets, height, first = asyncio.run(run())
    assert height == 1024
    assert widgets < 40  # a handful of widgets, whatever the fleet size
    assert "node-0000" in first and first.count(" ") > CELL_W


async def test_the_palette_jumps_to_a_host_and_changes_the_metric() -> None:
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    from gputui.ui.screens.host_screen import HostScreen

    store = frozen_store(12)
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:

        async def run_command(text: str, expect: str) -> None:
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
            await pilot.press(*text)
            options = app.screen.query_one(OptionList)

            def first_is_expected() -> bool:
                return options.option_count > 0 and expect in str(options.get_option_at_index(0).prompt)

            await wait_for(pilot, first_is_expected, f"'{expect}' to be the first hit")
            await pilot.press("enter")

        await run_command("heat map temp", "temperature")
        await wait_for(pilot, lambda: app.screen.query_one(FleetView).metric == "temp", "the temperature heat map")
        await run_command("open host gpu-11", "gpu-11")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the host screen")
        assert isinstance(app.screen, HostScreen) and app.screen.host == "gpu-11"


@pytest.mark.parametrize("size", [SIZE, (80, 24)])  # 80 columns: lines cut short, the list scrolls sideways
async def test_on_the_linux_console_nothing_outside_ascii_is_drawn(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    monkeypatch.setenv("TERM", "linux")
    store = frozen_store(10)
    app = GpuTuiApp(store, [], title="fleet")
    async with app.run_test(size=size) as pilot:
        assert app.theme == "gputui-console" and app.ascii
        seen = {}
        seen["overview"] = screen_text(app)
        await pilot.press("question_mark")
        seen["help"] = screen_text(app)
        await pilot.press("escape", "slash")
        seen["filter"] = screen_text(app)
        await pilot.press("escape", "enter")
        for tab in "1234":
            await pilot.press(tab)
            await pilot.pause()
            seen[f"host tab {tab}"] = screen_text(app)
        await pilot.press("escape", "c")
        seen["connections"] = screen_text(app)
        await pilot.press("escape", "A")
        await pilot.pause()
        seen["audit"] = screen_text(app)
        await pilot.press("escape", "t")
        await pilot.pause()
        seen["triage"] = screen_text(app)
        await pilot.press("escape", "ctrl+p")  # the palette (tests/test_themes.py looks at it closer)
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.pause()
        seen["palette"] = screen_text(app)
    for name, text in seen.items():
        odd = sorted({c for c in text if ord(c) > 127})
        assert not odd, f"{name} shows {odd}"
    assert "gpu-01" in seen["overview"] and "Keys" in seen["help"]
    assert "Audit log" in seen["audit"] and "Triage" in seen["triage"]


async def test_switching_theme_saves_it_to_the_config(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    config = tmp_path / "config.toml"
    config.write_text('# mine\ntheme = "gputui-dark"  # the usual\ninterval = 1.0\n')
    app = GpuTuiApp(frozen_store(2), [], config_path=config)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "gputui-dark"
        app.theme = "gputui-high-contrast"
        await pilot.pause()
        assert not app.ascii
        app.theme = "gputui-console"
        await pilot.pause()
        assert app.ascii  # chosen by hand, the console theme draws in ASCII too
    text = config.read_text()
    assert 'theme = "gputui-console"  # the usual' in text and text.startswith("# mine\n")


async def test_the_palette_sets_the_chart_span_on_the_host_screen() -> None:
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    from gputui.ui.panels.utilization import UtilizationPanel

    app = GpuTuiApp(frozen_store(3), [])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter", "2")  # the host, on its thermal tab
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"chart span 1 h")
        options = app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: options.option_count > 0 and "1 h" in str(options.get_option_at_index(0).prompt), "the hit")
        await pilot.press("enter")
        panel = app.screen.query_one(UtilizationPanel)
        await wait_for(pilot, lambda: panel.span[0] == "1 h", "the 1 h span")


# -- what the operator must see at 80 columns, and the filter's way out -------------


async def test_lost_gpus_alerts_and_the_filter_are_on_screen_at_80_columns() -> None:
    store = frozen_store(8)  # gpu-03 runs the incident scenario: one GPU fallen off the bus
    app = GpuTuiApp(store, [], title="a fleet with a rather long name: training, inference and the rest")
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.screen.query_one(FleetView)
        await pilot.press("slash", *"A100", "enter")
        await wait_for(pilot, lambda: view.needle == "A100" and view.has_focus, "the filter kept")
        shown = len(set(view.names))
        assert 0 < shown < 8
        text = screen_text(app)
        assert "alerts: 1 critical" in text, text[:400]
        assert "1 GPU lost" in text
        assert f"filter 'A100': {shown} of 8 hosts" in text


async def test_a_filter_that_matches_nothing_says_so_and_escape_clears_a_kept_filter() -> None:
    store = frozen_store(4)
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:
        view = app.screen.query_one(FleetView)
        await pilot.press("slash", *"zzz", "enter")
        await wait_for(pilot, lambda: view.needle == "zzz" and view.has_focus, "the filter kept")
        assert view.names == []
        await pilot.pause()
        text = screen_text(app)
        assert "no hosts match 'zzz'" in line(view, 0)  # in the list itself
        assert text.count("no hosts match 'zzz'") == 2  # and on the summary's second line
        assert "esc Clear filter" in text  # the footer says how out
        await pilot.press("escape")  # the box is closed: esc drops the kept filter
        await wait_for(pilot, lambda: view.needle == "", "escape to clear the kept filter")
        assert len(view.names) == 4 and view.has_focus
        await pilot.pause()
        text = screen_text(app)
        assert "no hosts match" not in text and "Clear filter" not in text


async def test_the_hottest_gpu_reads_in_the_themes_unit() -> None:
    store = frozen_store(3)
    hottest = max(g.temp_c or 0 for g in store.hosts["gpu-01"].gpus())
    app = GpuTuiApp(store, [])
    async with app.run_test(size=SIZE) as pilot:
        view = app.screen.query_one(FleetView)
        assert f"{hottest} °C" in line(view, 0)  # as the host screen's Thermal tab writes it
        app.theme = "gputui-console"
        await pilot.pause()
        view.reload()
        assert f"{hottest} C " in line(view, 0) and "°" not in line(view, 0)


def test_the_state_sort_puts_hosts_with_alerts_among_the_worst() -> None:
    store = frozen_store(5)
    names = host_names(5)
    store.mark_down(names[4], "connection refused")
    store.hosts[names[3]].last_frame_at = fixed() - 3600  # stale
    alerts = {names[2]: Severity.CRITICAL, names[1]: Severity.WARNING}
    order = [r.host for r in arrange(store, sort="state", alerts=alerts)]
    # down, a critical alert, stale, a warning, then the quiet ones by name
    assert order == [names[4], names[2], names[3], names[1], names[0]]
    assert [r.host for r in arrange(store, sort="state")][:2] == [names[4], names[3]]


@pytest.mark.parametrize("size", [(80, 24), (80, 25)])
async def test_the_last_host_is_drawn_when_the_cursor_is_on_it_at_80_columns(size: tuple[int, int]) -> None:
    """The horizontal scrollbar takes the list's last row at 80 columns: the cursor must not hide under it."""
    app = demo_app(hosts=30, gpus=None, scenario="fleet", seed=0, interval=0.2)
    app.triage_first = False  # this test is about the overview, not the triage it would open on
    async with app.run_test(size=size) as pilot:
        view = app.screen.query_one(FleetView)
        await wait_for(pilot, lambda: view.gpu_columns == 8 and len(view.names) == 30, "every host's GPUs on screen")
        await pilot.press("end")
        assert view.selected == "gpu-30"
        await pilot.pause()
        assert "gpu-30" in screen_text(app)
        await pilot.press("home", "down")
        await pilot.pause()
        assert "gpu-30" not in screen_text(app)  # the list is longer than the screen
        await pilot.press("pagedown", "pagedown")
        await pilot.pause()
        assert view.selected == "gpu-30" and "gpu-30" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the host screen")
        assert isinstance(app.screen, HostScreen) and app.screen.host == "gpu-30"


async def test_at_80x24_s_shows_the_new_order_and_each_host_its_hottest_gpu() -> None:
    app = demo_app(hosts=12, gpus=None, scenario="fleet", seed=0, interval=0.2)
    app.triage_first = False  # this test is about the overview, not the triage it would open on
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.screen.query_one(FleetView)
        await wait_for(pilot, lambda: view.gpu_columns == 8 and len(view.names) == 12, "every host's GPUs on screen")
        # A host's hello sets the columns before its first sample: wait for every sample, then for
        # a redraw that has them (the overview redraws once a second), not for the first hello.
        await wait_for(pilot, lambda: all(r.sample is not None for r in app.store.hosts.values()), "every host's first sample")
        await wait_for(pilot, lambda: not re.search(r"waiting for the first frame| 0/0 ", screen_text(app)), "a redraw with them")
        text = screen_text(app)
        assert "sort name" in text and "TMAX" in text, text
        rows = [row for row in text.splitlines() if re.search(r"gpu-\d\d ", row)]
        cut = [row for row in rows if not re.search(r" \d+ °C(\s|$)", row)]
        assert len(rows) == 12 and not cut, cut  # every host's hottest GPU (TMAX), none cut off
        await pilot.press("s")
        await pilot.pause()
        assert "sort state" in screen_text(app)


async def test_a_config_without_hosts_says_what_is_missing_instead_of_a_blank_list(tmp_path: Path) -> None:
    from gputui import config as cfg
    from gputui.ui.launch import configured_app

    path = tmp_path / "config.toml"
    path.write_text("interval = 1.0\n[thresholds]\n")
    app = configured_app(path, cfg.load(path))
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.screen.query_one(FleetView)
        await pilot.pause()
        assert "no hosts to show: add [[hosts]]" in line(view, 0)
        assert "no hosts to show" in screen_text(app)


async def test_the_health_pass_starts_just_after_a_refresh_never_with_one() -> None:
    """A refresh and a slice of the health pass due at the same moment held the event loop for both
    (50 ms at 1,024 hosts): each pass starts a set moment after a refresh, so that it has most of
    the time until the next, even when a refresh came late."""
    app = GpuTuiApp(frozen_store(3), [])
    loop = asyncio.get_running_loop()
    refreshed: list[float] = []
    judged: list[float] = []
    enough = asyncio.Event()
    async with app.run_test(size=SIZE):
        overview = app.screen
        assert isinstance(overview, OverviewScreen)
        board = app.board
        refresh, judge = overview.update_view, board.tick_async

        def timed_refresh() -> None:
            refreshed.append(loop.time())
            refresh()

        async def timed_judge(store: FleetStore) -> None:
            judged.append(loop.time())
            if len(judged) >= 4:
                enough.set()
            await judge(store)

        overview.update_view = timed_refresh  # type: ignore[method-assign]
        board.tick_async = timed_judge  # type: ignore[method-assign]
        time.sleep(0.7)  # noqa: ASYNC251 - the loop held past the first refresh, as at start with a large fleet
        async with asyncio.timeout(30):
            await enough.wait()
    after_refresh = [at - max((r for r in refreshed if r <= at), default=at - 1.0) for at in judged]
    # Taken from each refresh as it came: the late first one moved no pass after it.
    assert statistics.median(after_refresh) == pytest.approx(HEALTH_AFTER_REFRESH_S, abs=0.05), after_refresh
