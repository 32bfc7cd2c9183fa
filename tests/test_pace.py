"""The dashboard says it is behind its hosts only when it is: fewer samples read than sent, while
its own process has no CPU left; hosts that send less on their own are not its doing."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time

import pytest
from textual.widgets import Static

from gputui.agent.sampler import Sampler
from gputui.fleet.pace import JUDGE_EVERY_MAX_S, JUDGE_EVERY_S, Pace, PaceReading, judging_every_s
from gputui.fleet.store import FleetStore, HostState
from gputui.frames import parse_frame
from gputui.health.model import Alert
from gputui.sim.nvml import SimNvml
from gputui.ui.app import GpuTuiApp
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.screens.triage_screen import TriageScreen
from tests.screen_reading import screen_text, static_text
from tests.ui_apps import Clock
from tests.waiting import wait_for


class Fleet:
    """``hosts`` simulated hosts at ``interval_s``, a pace meter on fake real-time and CPU clocks."""

    def __init__(self, hosts: int, interval_s: float = 1.0) -> None:
        self.clock, self.cpu = Clock(), Clock(0.0)
        self.store = FleetStore(clock=self.clock)
        self.samplers = {}
        for i in range(hosts):
            name = f"h{i}"
            sim = SimNvml("healthy", seed=i, clock=self.clock, processes="synthetic")  # no stand-in processes to outlive it
            sampler = Sampler(sim, host=name, clock=self.clock)
            self.store.add_host(name)
            self.store.apply(name, parse_frame(json.dumps(sampler.hello(interval_s))))
            self.samplers[name] = sampler
        self.pace = Pace(self.store, clock=self.clock, cpu_clock=self.cpu)
        self.pace.measure()
        self.turn = 0  # the next host whose sample is read: each in turn, as a dashboard behind reads them

    def second(self, read: int, cpu: float) -> None:
        """One second: ``read`` samples read (the hosts in turn), ``cpu`` of a core used."""
        self.clock.now += 1.0
        self.cpu.now += cpu
        names = [n for n, r in self.store.hosts.items() if r.down_since is None]
        for _ in range(read):
            name = names[self.turn % len(names)]
            self.turn += 1
            self.store.apply(name, parse_frame(json.dumps(self.samplers[name].sample())))
        self.pace.measure()


def test_a_busy_dashboard_reading_a_quarter_of_the_samples_says_so() -> None:
    fleet = Fleet(8)
    for _ in range(5):
        fleet.second(read=2, cpu=0.98)
    reading = fleet.pace.reading
    assert reading.behind
    assert reading.words() == "dashboard behind: 25% of samples read, CPU 98%"


def test_a_busy_dashboard_that_reads_every_sample_keeps_up() -> None:
    fleet = Fleet(8)
    for _ in range(5):
        fleet.second(read=8, cpu=0.98)
    assert fleet.pace.reading.read == 1.0
    assert not fleet.pace.reading.behind
    assert fleet.pace.reading.words() == ""


def test_hosts_that_send_less_on_their_own_are_not_the_dashboards_doing() -> None:
    fleet = Fleet(8)
    for _ in range(5):
        fleet.second(read=2, cpu=0.2)
    assert not fleet.pace.reading.behind
    assert fleet.pace.reading.read is None  # not even worked out: the CPU said enough


def test_hosts_that_are_down_or_slower_are_expected_at_their_own_pace() -> None:
    fleet = Fleet(8, interval_s=2.0)  # 4 samples a second from 8 hosts
    for name in ("h6", "h7"):
        fleet.store.mark_down(name, "connection lost")
    for _ in range(5):
        fleet.second(read=3, cpu=0.95)  # all that 6 hosts at 2 s send
    assert fleet.pace.reading.read == 1.0
    assert not fleet.pace.reading.behind


def test_the_reading_covers_the_last_seconds_and_clears_once_the_dashboard_catches_up() -> None:
    fleet = Fleet(4)
    for _ in range(10):
        fleet.second(read=1, cpu=1.0)
    assert fleet.pace.reading.behind
    for _ in range(2):
        fleet.second(read=4, cpu=1.0)  # caught up, but the window still holds 3 slow seconds
    assert fleet.pace.reading.behind
    for _ in range(4):
        fleet.second(read=4, cpu=1.0)
    assert not fleet.pace.reading.behind
    assert fleet.pace.reading.read == 1.0


async def test_the_screens_say_the_dashboard_is_behind_and_that_stale_hosts_may_only_be_waiting() -> None:
    fleet = Fleet(10)
    for _ in range(6):
        fleet.second(read=2, cpu=0.98)  # each host read every 5 s: stale after 3
    stale = [n for n, r in fleet.store.hosts.items() if r.state(fleet.clock()) is HostState.STALE]
    assert stale
    behind = "dashboard behind: 20% of samples read, CPU 98%"
    wall = Clock(1_800_000_000.0)  # the alerts' clock: moved on past the time a stale host must hold
    app = GpuTuiApp(fleet.store, [], pace=fleet.pace, wall_clock=wall)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: behind in screen_text(app), "the overview saying it is behind")
        wall.now += 60
        await wait_for(pilot, lambda: bool(app.board.shown), "the stale hosts' alerts")
        assert isinstance(app.screen, OverviewScreen)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "t to open the triage")
        triage = app.screen
        assert isinstance(triage, TriageScreen)
        assert behind in static_text(triage.query_one("#triage-title"))
        alert = triage.selected_alert()
        assert alert is not None and alert.rule == "stale" and alert.host in stale
        detail = " ".join(static_text(triage.query_one("#triage-detail")).split())
        assert f"but the {behind}: its frames may be waiting unread here" in detail
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "back to the overview")
        for _ in range(5):
            fleet.second(read=10, cpu=0.98)  # caught up: every host read each second
        await wait_for(pilot, lambda: "behind" not in screen_text(app), "the overview no longer saying so")
        assert "10 live" in screen_text(app)


def test_while_behind_the_rules_run_rarer_so_that_a_pass_takes_at_most_a_quarter_of_the_time() -> None:
    behind = PaceReading(cpu=0.97, read=0.3)
    keeping_up = PaceReading(cpu=0.97, read=0.95)
    assert judging_every_s(keeping_up, 0.9) == JUDGE_EVERY_S == 1.0  # however long a pass takes
    assert judging_every_s(behind, 0.1) == 1.0
    assert judging_every_s(behind, 0.5) == 2.0
    assert judging_every_s(behind, 3.0) == JUDGE_EVERY_MAX_S  # an XID still alerts within seconds


@pytest.mark.parametrize(("read", "every_s"), [(2, 2.0), (10, 1.0)])
async def test_the_app_judges_every_two_seconds_while_behind_with_half_second_passes(read: int, every_s: float) -> None:
    fleet = Fleet(10)
    for _ in range(6):
        fleet.second(read=read, cpu=0.98)
    loop = asyncio.get_running_loop()
    started: list[float] = []

    def slow_rules(store: FleetStore) -> list[Alert]:
        started.append(loop.time())
        time.sleep(0.5)  # a pass of the rules over a large fleet, holding the loop as it would
        return []

    app = GpuTuiApp(fleet.store, [], pace=fleet.pace, health=slow_rules)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: len(started) >= 5, "five passes of the rules", timeout=30)
        assert app.board.every_s == pytest.approx(every_s, abs=0.05)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "t to open the triage")
        title = static_text(app.screen.query_one("#triage-title", Static))
        assert ("alerts judged every 2.0 s" in title) == (every_s == 2.0), title
    gaps = [b - a for a, b in itertools.pairwise(started[1:])]  # the first pass is the one at start
    assert statistics.median(gaps) == pytest.approx(every_s, abs=0.3), gaps
