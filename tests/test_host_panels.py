"""The host screen's four tabs, driven as an operator would: keys, clicks, refreshes.

Every store here is built deterministically: a simulated "incident" host
(GPU 2 throttling, GPU 5 lost, GPU 6 holding memory at 0 %) sampled through
the agent's Sampler and the frame parser on one fake clock that the
simulator, the sampler and the store all read, so "16 minutes of history"
takes a fraction of a second and every run sees the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TabbedContent

from gputui.ui.app import GpuTuiApp
from gputui.ui.panels.allocation import AllocationPanel
from gputui.ui.panels.base import ASCII_BARS, BARS, AsciiScrollBarRender, HostPanel, HostView, sparkline
from gputui.ui.panels.processes import ProcessesPanel
from gputui.ui.panels.util_chart import UtilChart, points
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.overview import OverviewScreen
from tests.screen_reading import cells, screen_lines, screen_text
from tests.ui_apps import HOST, Host, open_screen
from tests.waiting import wait_for

SIZE = (150, 40)
TABS = ("utilization", "thermal", "allocation", "processes")


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config and themes out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "config.toml"))


async def wait_for_tab(pilot: Pilot[None], tabs: TabbedContent, tab: str) -> None:
    await wait_for(pilot, lambda: tabs.active == tab, f"tab {tab} to be shown")


async def wait_for_text(pilot: Pilot[None], widget: Static, text: str) -> None:
    await wait_for(pilot, lambda: text in static_text(widget), f"{text!r} in #{widget.id}")


async def show_tab(pilot: Pilot[None], screen: HostScreen, key: str, table_id: str) -> DataTable[object]:
    await pilot.press(key)
    tab = TABS[int(key) - 1]
    await wait_for_tab(pilot, screen.query_one(TabbedContent), tab)
    table = screen.query_one(f"#{table_id}", DataTable)
    await wait_for(pilot, lambda: table.row_count > 0, f"the {tab} table to fill")
    return table


def static_text(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


def shown_keys(table: DataTable[object]) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


# -- tabs ------------------------------------------------------------------------


async def test_four_tabs_keys_and_clicks_switch_them() -> None:
    host = Host(samples=5)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "the overview")
        await pilot.press("enter")  # the only host is selected
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "enter to open the host")
        screen = app.screen
        assert isinstance(screen, HostScreen)
        tabs = screen.query_one(TabbedContent)
        assert [pane.id for pane in tabs.query("TabPane")] == list(TABS)
        assert tabs.active == "utilization"
        for key, tab in zip("2341", ("thermal", "allocation", "processes", "utilization"), strict=True):
            await pilot.press(key)
            await wait_for_tab(pilot, tabs, tab)
        await pilot.click("#--content-tab-allocation")
        await wait_for(pilot, lambda: tabs.active == "allocation", "a click on the Allocation tab")
        assert screen.query_one("#alloc", DataTable).row_count == 8
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "escape to go back")


async def test_only_the_visible_tab_is_redrawn(monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(samples=5)
    app = GpuTuiApp(host.store, [])
    drawn: list[str] = []
    original = {cls: cls.show for cls in HostPanel.__subclasses__()}

    def counting(cls: type[HostPanel]) -> Callable[[HostPanel, HostView], None]:
        def show(self: HostPanel, view: HostView) -> None:
            drawn.append(cls.__name__)
            original[cls](self, view)

        return show

    for cls in original:
        monkeypatch.setattr(cls, "show", counting(cls))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        await show_tab(pilot, screen, "2", "temps")
        drawn.clear()
        screen.update_view()
        screen.update_view()
        assert drawn == ["ThermalPanel", "ThermalPanel"]


# -- utilization -------------------------------------------------------------------


def test_sparkline_keeps_gaps_apart_from_zero() -> None:
    assert sparkline([0.0, None, 100.0], ascii=False, width=5) == "  ▁ █"
    assert sparkline([0.0, None, 100.0], ascii=True, width=3) == ". #"
    assert sparkline([50.0] * 80, ascii=False, width=60) == "▅" * 60


def test_chart_points_leave_gaps_out() -> None:
    assert points([10.0, 20.0, None, 30.0], step_s=60.0, max_points=100) == ([-3.0, -2.0, 0.0], [10.0, 20.0, 30.0])
    # Too many values for the width: averaged in runs that end at the newest; an empty run stays a gap.
    xs, ys = points([None] * 6 + [40.0, 60.0, 80.0, 100.0], step_s=1.0, max_points=5)
    assert (xs, ys) == ([-2 / 60, 0.0], [50.0, 90.0])
    assert len(points([50.0] * 600, step_s=1.0, max_points=290)[0]) <= 290


async def test_utilization_sparkline_per_gpu_and_span_key() -> None:
    host = Host(samples=90)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = screen.query_one("#gpus", DataTable)
        assert shown_keys(table) == [str(i) for i in range(8)]
        for key in shown_keys(table):
            spark = cells(table, key)[-1]
            if key == "5":
                assert "fallen off the bus" in spark
                continue
            assert len(spark) == 60, spark
            assert set(spark) <= set(BARS), spark
            assert spark.strip(), f"GPU {key} has history, so its sparkline is not blank"
        assert cells(table, "6")[-1] == "▁" * 60  # holding memory at 0 %: the lowest bar, not a gap
        label = screen.query_one("#util-span", Static)
        assert "last 10 min" in static_text(label)
        for expected in ("last 1 h", "last 1 min", "last 10 min"):
            await pilot.press("s")
            await wait_for_text(pilot, label, expected)


async def test_m_turns_the_chart_to_memory_temperature_and_power_with_gaps_kept() -> None:
    host = Host(samples=90)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        label = screen.query_one("#util-span", Static)
        chart = screen.query_one(UtilChart)
        hot = host.store.hosts[HOST].static(2)
        assert hot is not None and hot.temp_shutdown_c
        for title in ("Memory used %", "Temperature C", "Power W", "Utilization %"):
            await pilot.press("m")
            await wait_for_text(pilot, label, title)
            await pilot.pause()
            key: Any = chart.drawn
            drawn, y_top = key[0], float(key[-1])
            series: dict[int, tuple[Any, float]] = {i: (values, step) for i, values, step in drawn}
            if title == "Temperature C":
                assert y_top >= hot.temp_shutdown_c  # the shutdown point is on the chart
                temps = series[2][0]
                assert max(v for v in temps if v is not None) > 80  # the hot GPU's history
            if title == "Power W":
                assert y_top > 100
            lost = series.get(5)
            assert lost is None or all(v is None for v in lost[0][-30:])  # the lost GPU is a gap, not 0


# -- thermal -----------------------------------------------------------------------


async def test_thermal_shows_throttling_gpu_and_lost_gpu() -> None:
    host = Host(samples=30)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "2", "temps")
        hot = cells(table, "2")
        assert "thermal" in hot[-1], hot
        assert "(-" in hot[2], f"GPU 2 is past its slowdown threshold: {hot}"
        assert "thermal" not in cells(table, "0")[-1]
        assert cells(table, "0")[6] == "N/A", "H100 SXM is fanless"
        lost = cells(table, "5")
        assert lost[1] == "LOST"
        assert "fallen off the bus" in lost[-1]


async def test_at_80x24_the_thermal_columns_fit_and_the_gpu_column_stays_when_scrolled() -> None:
    host = Host(samples=30)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(pilot, host)
        await show_tab(pilot, screen, "2", "temps")
        await pilot.pause()
        first = screen_text(app)
        for header in ("GPU", "Temp", "Slowdown", "Shutdown", "Mem temp", "Fan", "SM MHz"):
            assert header in first, f"{header} needs scrolling at 80 columns"
        await pilot.press(*["right"] * 20)  # the throttle reasons, the one wide column
        await pilot.pause()
        header = next(line for line in screen_text(app).splitlines() if "Throttle" in line)
        assert header.lstrip().startswith("GPU") and "Temp" not in header, header  # scrolled, the GPU column pinned


# -- allocation --------------------------------------------------------------------


def alloc_summary(screen: HostScreen) -> str:
    return static_text(screen.query_one("#alloc-summary", Static))


def state_column(table: DataTable[object]) -> dict[str, str]:
    return {key: cells(table, key)[1] for key in shown_keys(table)}


async def test_allocation_marks_idle_holding_after_16_minutes() -> None:
    host = Host(samples=16 * 60)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)  # the default 15 min threshold
        table = await show_tab(pilot, screen, "3", "alloc")
        states = state_column(table)
        assert states["6"] == "idle, holding memory"
        assert states["5"] == "lost"
        assert states["2"] == "busy"
        free = sum(s == "free" for s in states.values())
        busy = sum(s == "busy" for s in states.values())
        assert free + busy == 6
        summary = alloc_summary(screen)
        assert summary.startswith(f"{free} free, {busy} busy, 1 idle-holding"), summary
        assert "1 lost" in summary


async def test_allocation_says_idle_for_until_the_history_is_long_enough() -> None:
    host = Host(samples=120)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host, idle_holding_s=180.0)
        table = await show_tab(pilot, screen, "3", "alloc")
        assert state_column(table)["6"] == "idle (for 2m)"
        assert "0 idle-holding" in alloc_summary(screen)
        host.feed(61)  # now idle for 181 s: past the threshold; the next refresh says so
        await wait_for(pilot, lambda: state_column(table)["6"] == "idle, holding memory", "GPU 6 to turn idle-holding")
        assert "1 idle-holding" in alloc_summary(screen)
        panel = screen.query_one(AllocationPanel)
        assert panel.states[6].words == "idle, holding memory"


# -- processes ---------------------------------------------------------------------


def proc_mem(host: Host) -> dict[str, int]:
    return {
        f"{g.index}:{p.pid}": p.gpu_mem_mib or 0 for g in host.store.hosts[HOST].gpus() for p in g.processes
    }  # fmt: skip


async def test_processes_sort_by_gpu_memory_and_reverse() -> None:
    host = Host(samples=10)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "4", "procs")
        panel = screen.query_one(ProcessesPanel)
        summary = screen.query_one("#proc-summary", Static)
        mem = proc_mem(host)
        assert set(shown_keys(table)) == set(mem)
        while panel.sort != "gpu_mem":
            await pilot.press("o")
        await wait_for(pilot, lambda: "sorted by GPU mem (largest first)" in static_text(summary), "the sort label")
        order = [mem[k] for k in shown_keys(table)]
        assert order == sorted(order, reverse=True)
        await pilot.press("O")
        await wait_for(pilot, lambda: "smallest first" in static_text(summary), "O to reverse the sort")
        order = [mem[k] for k in shown_keys(table)]
        assert order == sorted(order)


async def test_clicking_a_header_sorts_by_it() -> None:
    host = Host(samples=10)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "4", "procs")
        panel = screen.query_one(ProcessesPanel)
        x = 0
        for column in table.ordered_columns:
            if column.key.value == "user":
                break
            x += column.get_render_width(table)
        await pilot.click(table, offset=(x + 1, 0))
        await wait_for(pilot, lambda: panel.sort == "user", "a click on the User header to sort by user")
        users = [cells(table, k)[1] for k in shown_keys(table)]
        assert users == sorted(users)


async def test_cursor_stays_on_its_process_when_rows_move() -> None:
    host = Host(samples=10)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "4", "procs")
        await pilot.press("down", "down")
        chosen = shown_keys(table)[table.cursor_row]
        for key in ("o", "o", "O", "o"):
            await pilot.press(key)
            await pilot.pause()
            assert shown_keys(table)[table.cursor_row] == chosen, f"after {key}"
        host.feed(3)
        screen.update_view()
        await pilot.pause()
        assert shown_keys(table)[table.cursor_row] == chosen


async def test_processes_filter_by_user() -> None:
    host = Host(samples=10)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "4", "procs")
        everyone = {f"{g.index}:{p.pid}": p.user for g in host.store.hosts[HOST].gpus() for p in g.processes}
        user = sorted(u for u in everyone.values() if u)[0]
        theirs = {k for k, u in everyone.items() if u == user}
        assert 0 < len(theirs) < len(everyone), "the test needs a user with some, not all, of the processes"
        await pilot.press("u")
        box = screen.query_one("#proc-filter", Input)
        await wait_for(pilot, lambda: box.display and box.has_focus, "u to open the user filter")
        await pilot.press(*user, "enter")
        await wait_for(pilot, lambda: set(shown_keys(table)) == theirs, f"only {user}'s processes")
        assert not box.display
        assert all(cells(table, k)[1] == user for k in shown_keys(table))
        await pilot.press("u")
        await wait_for(pilot, lambda: box.has_focus, "u to reopen the filter")
        await pilot.press(*["backspace"] * len(user), "enter")
        await wait_for(pilot, lambda: set(shown_keys(table)) == set(everyone), "an empty filter to show everyone")
        assert isinstance(app.screen, HostScreen), "backspace in the filter edits it, it does not leave the screen"
        await pilot.press("u", *user)
        await wait_for(pilot, lambda: set(shown_keys(table)) == theirs, "the filter to apply as it is typed")
        await pilot.press("escape")
        await wait_for(pilot, lambda: set(shown_keys(table)) == set(everyone), "escape to clear the filter")
        assert isinstance(app.screen, HostScreen) and not box.display
        part = user[1:3].upper()  # part of a name, in any case, finds it, as the overview's / does
        partly = {k for k, u in everyone.items() if u and part.casefold() in u.casefold()}
        assert theirs <= partly
        await pilot.press("u", *part, "enter")
        await wait_for(pilot, lambda: set(shown_keys(table)) == partly, f"the processes of users with {part!r} in the name")
        await pilot.press("escape")
        await wait_for(pilot, lambda: set(shown_keys(table)) == set(everyone), "escape to clear the filter")
        await pilot.press("escape")  # nothing left to clear: escape goes back, as everywhere
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "escape to leave the host")


async def test_each_process_shows_its_sm_and_memory_bandwidth_share() -> None:
    host = Host(samples=10)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "4", "procs")
        procs = {f"{g.index}:{p.pid}": p for g in host.store.hosts[HOST].gpus() for p in g.processes}
        assert procs and all(p.sm_pct is not None for p in procs.values())
        labels = [str(c.label) for c in table.columns.values()]
        sm, bw = labels.index("SM"), labels.index("Mem BW")
        for key, p in procs.items():
            row = cells(table, key)
            assert (row[sm], row[bw]) == (f"{p.sm_pct}%", f"{p.mem_bw_pct}%"), key
        # The idle GPU holding memory shows a job that uses no SM.
        idle = [p for p in procs.values() if p.gpu_mem_mib and p.sm_pct is not None and p.sm_pct <= 5]
        assert idle, "the incident host has a job holding memory while idle"


def gpus_in(words: str) -> set[int]:
    """ "0-3,6" as {0, 1, 2, 3, 6}."""
    out: set[int] = set()
    for run in words.split(","):
        first, _, last = run.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def groups_on_screen(table: DataTable[object]) -> list[tuple[str, list[str]]]:
    """(header row key, the process rows under it), top to bottom."""
    out: list[tuple[str, list[str]]] = []
    for key in shown_keys(table):
        if ":" in key and key.split(":")[0].isdigit():
            assert out, f"process {key} above every group header"
            out[-1][1].append(key)
        else:
            out.append((key, []))
    return out


def job_group(p: Any) -> str:
    return f"slurm {p.slurm_job}" if p.slurm_job else f"ctr {p.container}" if p.container else "no Slurm job or container"


def parent_group(p: Any) -> str:
    return f"parent {p.ppid} ({p.parent_command})"


async def test_g_groups_processes_by_job_and_by_parent_with_each_groups_totals() -> None:
    host = Host(samples=10)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "4", "procs")
        panel = screen.query_one(ProcessesPanel)
        summary = screen.query_one("#proc-summary", Static)
        procs = {f"{g.index}:{p.pid}": (g.index, p) for g in host.store.hosts[HOST].gpus() for p in g.processes}
        while panel.sort != "gpu_mem":
            await pilot.press("o")
        for key, words, group_of in (
            ("g", "Slurm job (else container)", job_group),
            ("g g", "parent process", parent_group),
        ):
            await pilot.press(*key.split())
            await wait_for_text(pilot, summary, f"grouped by {words}")
            await wait_for(pilot, lambda: groups_on_screen(table)[0][0].startswith("group:"), "the group headers")
            expected: dict[str, set[str]] = {}
            for k, (_, p) in procs.items():
                expected.setdefault(group_of(p), set()).add(k)
            assert len(expected) < len(procs), "the host runs several processes of one job and one parent"
            seen: dict[str, set[str]] = {}
            for header, members in groups_on_screen(table):
                row = cells(table, header)
                label, _, counts = row[-1].rpartition(": ")
                seen[label] = set(members)
                mine = [procs[k] for k in members]
                gpus = {gpu for gpu, _ in mine}
                n = len(mine)
                assert counts == f"{n} process{'es' * (n != 1)} on {len(gpus)} GPU{'s' * (len(gpus) != 1)}", label
                column = {str(c.label): i for i, c in enumerate(table.columns.values())}
                assert gpus_in(row[column["GPU"]]) == gpus, label
                assert row[column["GPU mem"]] == f"{sum(p.gpu_mem_mib or 0 for _, p in mine):,} MiB", label
                assert row[column["SM"]] == f"{sum(p.sm_pct or 0 for _, p in mine)}%", label
                # The sort (GPU memory, largest first) holds inside each group.
                memory = [p.gpu_mem_mib or 0 for _, p in mine]
                assert memory == sorted(memory, reverse=True), label
            assert seen == expected
        await pilot.press("g")
        await wait_for_text(pilot, summary, "grouped by user")
        await pilot.press("g")
        await wait_for(pilot, lambda: "grouped" not in static_text(summary), "g back to no grouping")
        await wait_for(pilot, lambda: set(shown_keys(table)) == set(procs), "the processes alone, no headers")


async def test_marks_go_to_the_right_processes_when_grouped() -> None:
    host = Host(samples=10)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_screen(pilot, host)
        table = await show_tab(pilot, screen, "4", "procs")
        panel = screen.query_one(ProcessesPanel)
        await pilot.press("g", "g", "g")  # by parent
        await wait_for(pilot, lambda: panel.grouping == "parent" and groups_on_screen(table)[0][0].startswith("group:"), "groups")
        family = max(groups_on_screen(table), key=lambda g: len(g[1]))
        assert len(family[1]) >= 2, "a launcher with several ranks"
        steps = shown_keys(table).index(family[0]) - table.cursor_row
        await pilot.press(*["down" if steps > 0 else "up"] * abs(steps))
        assert shown_keys(table)[table.cursor_row] == family[0]
        assert panel.selected_processes() == [], "a header is not a process: K has nothing to kill there"
        await pilot.press("space")  # on the header: the whole group
        await wait_for(pilot, lambda: panel.marked == set(family[1]), "the group's processes marked")
        await pilot.press("down", "down", "space")  # the group's second process: unmarked again
        second = family[1][1]
        await wait_for(pilot, lambda: panel.marked == set(family[1]) - {second}, "one process unmarked")
        pids = {int(k.split(":")[1]) for k in family[1] if k != second}
        assert {p.pid for _, p in panel.selected_processes()} == pids
        await pilot.press("up", "up", "space")  # some of the group were marked: the header marks them all
        await wait_for(pilot, lambda: panel.marked == set(family[1]), "the group marked again")
        await pilot.press("space")
        await wait_for(pilot, lambda: panel.marked == set(), "the header again: the group unmarked")


# -- MIG ---------------------------------------------------------------------------


@pytest.mark.parametrize("ascii", [False, True])
async def test_a_mig_gpu_shows_its_instances_in_every_gpu_tab(ascii: bool) -> None:
    host = Host(samples=5, scenario="mixed")
    gpu = host.store.hosts[HOST].gpus()[3]
    job = host.sim.gpus[3].job
    assert job is not None and job.pid is not None and host.sim.gpus[3].job_instance() == 0
    user = next(p.user for p in gpu.processes if p.pid == job.pid)
    branch = "`-" if ascii else "\u2514"
    app = GpuTuiApp(host.store, [], theme="gputui-console" if ascii else "gputui-dark")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.ascii == ascii
        screen = await open_screen(pilot, host)
        # Utilization: a row per instance under its GPU, with its memory.
        table = await show_tab(pilot, screen, "1", "gpus")
        assert shown_keys(table) == ["0", "1", "2", "3", "3/0", "3/1", "3/2"]
        assert cells(table, "3/0")[0] == f"{branch} 3g.40gb" and cells(table, "3/2")[0] == f"{branch} 1g.10gb"
        assert gpu.mig is not None and gpu.mig[0].mem_used_mib == job.mem_mib + 512
        assert cells(table, "3/0")[3] == f"{job.mem_mib + 512} / 40192 MiB"
        assert cells(table, "3/1")[3] == "0 / 19968 MiB"
        # Allocation: the GPU is in use through one instance; who runs where.
        table = await show_tab(pilot, screen, "3", "alloc")
        assert cells(table, "3")[1] == "in use: 1 of 3 MIG instances"
        assert cells(table, "3/0")[1:2] + cells(table, "3/0")[4:6] == ["busy", user or "", str(job.pid)]
        assert [cells(table, f"3/{k}")[1] for k in (1, 2)] == ["free", "free"]
        # Processes: the instance the job runs on.
        table = await show_tab(pilot, screen, "4", "procs")
        labels = [str(c.label) for c in table.columns.values()]
        assert cells(table, f"3:{job.pid}")[labels.index("MIG")] == "3g.40gb"
        assert all(cells(table, key)[labels.index("MIG")] == "" for key in shown_keys(table) if not key.startswith("3:"))
        # Grouped, the job's header sits above it and its row still names the instance.
        await pilot.press("g")
        await wait_for(pilot, lambda: shown_keys(table)[0].startswith("group:"), "the group headers")
        assert cells(table, f"3:{job.pid}")[labels.index("MIG")] == "3g.40gb"
        if ascii:
            await pilot.pause()
            bad = [line for line in screen_lines(app) if not line.isascii()]
            assert not bad, bad


# -- ASCII -------------------------------------------------------------------------


async def test_ascii_mode_draws_nothing_outside_ascii() -> None:
    host = Host(samples=120)
    app = GpuTuiApp(host.store, [], theme="gputui-console")  # what TERM=linux chooses
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.ascii
        screen = await open_screen(pilot, host)
        for key, table_id in (("1", "gpus"), ("2", "temps"), ("3", "alloc"), ("4", "procs")):
            table = await show_tab(pilot, screen, key, table_id)
            await pilot.pause()
            bad = [line for line in screen_lines(app) if not line.isascii()]
            assert not bad, f"tab {key}: {bad}"
            assert table.row_count > 0
        await pilot.press("u")  # the filter box has a border of its own
        await wait_for(pilot, lambda: screen.query_one("#proc-filter", Input).has_focus, "the user filter")
        bad = [line for line in screen_lines(app) if not line.isascii()]
        assert not bad, bad
        await pilot.press("escape", "1")
        table = screen.query_one("#gpus", DataTable)
        assert set(cells(table, "0")[-1]) <= set(ASCII_BARS)
        # No table here is long enough to scroll at this size; their scrollbars are swapped all the same.
        for table in screen.query(DataTable).results(DataTable):
            assert table.vertical_scrollbar.renderer is AsciiScrollBarRender


def test_ascii_scrollbars_draw_spaces_only() -> None:
    for vertical in (True, False):
        bar = AsciiScrollBarRender.render_bar(size=10, virtual_size=53.0, window_size=10.0, position=13.3, vertical=vertical)
        drawn = "".join(segment.text for segment in bar.segments)
        assert drawn.strip() == "", drawn


async def test_ascii_check_sees_unicode_when_not_in_ascii_mode() -> None:
    """The check above would pass vacuously if screen_lines missed what is drawn."""
    host = Host(samples=120)
    app = GpuTuiApp(host.store, [])
    async with app.run_test(size=SIZE) as pilot:
        await open_screen(pilot, host)
        await pilot.pause()
        assert any("▇" in line or "▁" in line for line in screen_lines(app))
