"""The overview's figures and rows are worked out again only when they may have changed: a
refresh of a fleet that sent nothing new counts and sorts nothing, yet a host that turns stale
with time alone (no frame, so no store change) is counted stale, and new data is always seen."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

import pytest

from gputui.agent.sampler import Sampler
from gputui.fleet.allocation import in_use
from gputui.fleet.store import FleetStore, HostState
from gputui.frames import parse_frame
from gputui.health.model import Severity
from gputui.sim.nvml import SimNvml
from gputui.sources.demo import host_names, scenario_for
from gputui.ui.state.fleet_figures import FleetFigures
from gputui.ui.widgets.fleet_order import Arrangement, Row, arrange
from tests.ui_apps import Clock


class Fleet:
    """Simulated hosts feeding a store on a clock the test moves (1 s interval: stale after 3 s)."""

    def __init__(self, hosts: int) -> None:
        self.clock = Clock()
        self.store = FleetStore(clock=self.clock)
        self.samplers: dict[str, Sampler] = {}
        for i, name in enumerate(host_names(hosts)):
            sim = SimNvml(scenario_for("fleet", i), seed=i, processes="synthetic", clock=self.clock, host_no=i)
            self.samplers[name] = Sampler(sim, host=name, describe=sim.describe_process, clock=self.clock)
            self.store.add_host(name)
            self.store.apply(name, parse_frame(json.dumps(self.samplers[name].hello(1.0))))
            self.sample(name)

    def sample(self, name: str) -> None:
        self.store.apply(name, parse_frame(json.dumps(self.samplers[name].sample())))


def counted_by_hand(store: FleetStore) -> tuple[dict[HostState, int], int, int, int]:
    """What the figures must say: the store's own counts and a walk of every GPU."""
    gpus = [(g, r.hello.source if r.hello else None) for r in store.hosts.values() for g in r.gpus()]
    return store.counts(), len(gpus), sum(in_use(g, s) for g, s in gpus), sum(g.lost for g, _ in gpus)


def test_the_figures_are_counted_once_per_store_change_and_match_a_full_count() -> None:
    fleet = Fleet(8)
    figures = FleetFigures(fleet.store)
    first = figures.current()
    assert (first.states, first.gpus, first.busy, first.lost) == counted_by_hand(fleet.store)
    assert first.widest == 8
    fleet.clock.now += 0.5
    assert figures.current() is first  # nothing sent, no host can have turned stale yet: not counted again
    fleet.sample("gpu-03")
    second = figures.current()
    assert second is not first
    assert (second.states, second.gpus, second.busy, second.lost) == counted_by_hand(fleet.store)


def test_a_host_that_goes_quiet_is_counted_stale_with_no_store_change() -> None:
    fleet = Fleet(4)
    figures = FleetFigures(fleet.store)
    assert figures.current().states[HostState.LIVE] == 4
    for _ in range(4):  # every host but gpu-01 keeps sending; gpu-01 sent its last frame at 1000.0
        fleet.clock.now += 1.0
        for name in ("gpu-02", "gpu-03", "gpu-04"):
            fleet.sample(name)
        assert figures.current().states == fleet.store.counts()
    version = fleet.store.version
    fleet.clock.now += 0.5  # past gpu-01's 3 s: stale now, and the store has not changed
    assert fleet.store.version == version
    assert figures.current().states == fleet.store.counts()
    assert figures.current().states[HostState.STALE] == 1


def test_a_clock_that_goes_back_is_counted_again() -> None:
    """A replay seeks backwards: a host stale at the later time is live at the earlier one."""
    fleet = Fleet(2)
    fleet.clock.now += 10.0
    figures = FleetFigures(fleet.store)
    assert figures.current().states[HostState.STALE] == 2
    fleet.clock.now -= 10.0
    assert figures.current().states[HostState.LIVE] == 2


@pytest.mark.parametrize("following", [False, True], ids=["counted when read", "following the store"])
def test_host_by_host_updates_always_agree_with_a_full_count(following: bool) -> None:
    """Hosts send, go quiet, go down, reconnect and come back in a random order while the clock
    moves, read after one step or several: the figures (worked out again only for the hosts that
    changed or turned stale) are what counting every host and GPU says, and no step walked the
    whole fleet again. Following the store (as the overview does), they are the same figures."""
    fleet = Fleet(24)
    figures = FleetFigures(fleet.store)
    if following:
        figures.follow()
    figures.current()
    full_counts = figures.full_counts
    rng = random.Random(7)
    names = list(fleet.samplers)
    for _ in range(300):
        name, step = rng.choice(names), rng.random()
        if step < 0.5:
            fleet.sample(name)
        elif step < 0.6:
            fleet.store.mark_down(name, "connection lost")
        elif step < 0.7:
            fleet.store.mark_connecting(name)
        else:
            fleet.clock.now += rng.choice([0.2, 0.5, 1.0, 2.5])
        if rng.random() < 0.5:
            continue  # read after several steps too
        figures_now = figures.current()
        assert (figures_now.states, figures_now.gpus, figures_now.busy, figures_now.lost) == counted_by_hand(fleet.store)
    assert figures.full_counts == full_counts
    assert figures.current().states[HostState.STALE] + figures.current().states[HostState.DOWN] > 0


def test_following_the_store_a_refresh_counts_no_host_that_sent_a_frame() -> None:
    """The overview's figures follow the store: a host's part is worked out as its frame comes, in
    that frame's turn of the event loop, so that a refresh of thousands of hosts has none to do."""
    fleet = Fleet(16)
    figures = FleetFigures(fleet.store)
    figures.follow()
    before = figures.current()
    fleet.clock.now += 1.0
    recounts = figures.recounts
    for name in fleet.samplers:
        fleet.sample(name)
    assert figures.recounts == recounts + 16  # one part as each frame came
    after = figures.current()
    assert figures.recounts == recounts + 16  # and none at the refresh
    assert after is not before  # yet the refresh sees the new figures
    assert (after.states, after.gpus, after.busy, after.lost) == counted_by_hand(fleet.store)

    fleet.store.clear_hosts()  # a change to the whole store (another fleet): the figures are behind it
    fleet.store.add_host("gpu-01")
    fleet.store.apply("gpu-01", parse_frame(json.dumps(fleet.samplers["gpu-01"].hello(1.0))))
    fleet.sample("gpu-01")
    assert figures.recounts == recounts + 16  # so not counted as they came
    caught_up = figures.current()
    assert (caught_up.states, caught_up.gpus, caught_up.busy, caught_up.lost) == counted_by_hand(fleet.store)
    recounts = figures.recounts
    fleet.sample("gpu-01")
    assert figures.recounts == recounts + 1  # following again

    figures.unfollow()
    fleet.sample("gpu-01")
    assert figures.recounts == recounts + 1  # no longer following: counted when read


def test_a_host_is_counted_stale_the_moment_its_own_state_says_so() -> None:
    """At a clock exactly on the deadline, where float rounding decides (255.1 + 3 s is a hair past
    258.1), the figures and the host's own state agree."""
    fleet = Fleet(2)
    fleet.clock.now = 255.1
    for name in fleet.samplers:
        fleet.sample(name)
    figures = FleetFigures(fleet.store)
    assert figures.current().states[HostState.LIVE] == 2
    fleet.clock.now = 255.1 + 3.0
    assert figures.current().states == fleet.store.counts()
    fleet.clock.now = 258.1
    assert figures.current().states == fleet.store.counts()


def rows_now(rows: Arrangement, figures: FleetFigures, sort: str, alerts: Mapping[str, Severity] | None = None) -> list[Row]:
    """The rows as the overview asks for them on a refresh: the figures first, then the rows."""
    figures.current()
    return rows.rows_for("", sort, "none", alerts or {}, figures.generation)


def test_the_name_order_is_kept_across_new_data_and_picks_up_a_new_host() -> None:
    fleet = Fleet(6)
    figures, rows = FleetFigures(fleet.store), Arrangement(fleet.store)
    first = rows_now(rows, figures, "name")
    fleet.sample("gpu-02")
    assert rows_now(rows, figures, "name") is first  # data moved, the order cannot have: not sorted again
    fleet.store.add_host("gpu-00")
    again = rows_now(rows, figures, "name")
    assert again == arrange(fleet.store) and again[0].host == "gpu-00"


def test_a_data_order_is_sorted_again_after_new_data_and_only_then() -> None:
    fleet = Fleet(6)
    figures, rows = FleetFigures(fleet.store), Arrangement(fleet.store)
    first = rows_now(rows, figures, "util")
    assert rows_now(rows, figures, "util") is first
    for _ in range(5):
        fleet.clock.now += 1.0
        for name in fleet.samplers:
            fleet.sample(name)
        assert rows_now(rows, figures, "util") == arrange(fleet.store, sort="util")


def test_the_state_order_follows_the_alerts_and_a_host_turning_stale() -> None:
    fleet = Fleet(4)
    figures, rows = FleetFigures(fleet.store), Arrangement(fleet.store)

    def by_state(alerts: Mapping[str, Severity]) -> list[str | None]:
        return [r.host for r in rows_now(rows, figures, "state", alerts)]

    assert by_state({}) == ["gpu-01", "gpu-02", "gpu-03", "gpu-04"]
    critical = {"gpu-03": Severity.CRITICAL}
    assert by_state(critical) == ["gpu-03", "gpu-01", "gpu-02", "gpu-04"]
    fleet.clock.now += 2.0
    for name in ("gpu-01", "gpu-02", "gpu-03"):
        fleet.sample(name)
    fleet.clock.now += 1.5  # gpu-04 stale (3.5 s quiet), the others live; no store change since
    assert by_state(critical) == ["gpu-03", "gpu-04", "gpu-01", "gpu-02"]
    assert rows_now(rows, figures, "state", critical) == arrange(fleet.store, sort="state", alerts=critical)
