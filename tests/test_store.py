"""Freshness and history in the fleet store."""

from __future__ import annotations

import json

import pytest

from gputui.agent.sampler import Sampler
from gputui.fleet.history import Ring
from gputui.fleet.store import FleetStore, HostState
from gputui.frames import parse_frame
from gputui.sim.nvml import SimNvml


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_live_then_stale_after_three_intervals_then_down() -> None:
    clock = Clock()
    store = FleetStore(clock=clock)
    store.add_host("a")
    assert store.hosts["a"].state(clock.now) is HostState.CONNECTING
    sim = SimNvml("healthy", gpus=2, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="a", describe=sim.describe_process, clock=clock)
    store.apply("a", parse_frame(json.dumps(sampler.hello(2.0))))
    store.apply("a", parse_frame(json.dumps(sampler.sample())))
    record = store.hosts["a"]
    assert record.state(clock.now) is HostState.LIVE
    clock.now += 5.9  # under 3 intervals of 2 s
    assert record.state(clock.now) is HostState.LIVE
    clock.now += 0.2
    assert record.state(clock.now) is HostState.STALE
    assert record.age_s(clock.now) == pytest.approx(6.1)
    store.mark_down("a", "connection reset")
    assert record.state(clock.now) is HostState.DOWN
    assert record.sample is not None  # the last data is kept, marked as old
    assert store.counts()[HostState.DOWN] == 1


def test_ring_keeps_the_newest_values_in_order() -> None:
    ring = Ring(4)
    for v in range(1, 7):
        ring.push(float(v))
    assert ring.values() == [3.0, 4.0, 5.0, 6.0]
    ring.push(None)
    assert ring.values() == [4.0, 5.0, 6.0, None]
    assert ring.capacity == 4


def test_history_grows_per_gpu_and_stays_bounded() -> None:
    clock = Clock()
    store = FleetStore(clock=clock, history_samples=5)
    store.add_host("a")
    sim = SimNvml("healthy", gpus=2, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="a", describe=sim.describe_process, clock=clock)
    store.apply("a", parse_frame(json.dumps(sampler.hello(1.0))))
    for _ in range(8):
        clock.now += 1
        store.apply("a", parse_frame(json.dumps(sampler.sample())))
    hist = store.hosts["a"].history[0]
    assert set(store.hosts["a"].history) == {0, 1}
    # 10 s is more than the 5 fine slots: the coarse tier, which has no complete 10-sample slot yet
    assert hist.series("util_pct", 10) == []
    util = hist.series("util_pct", 5)
    assert len(util) == 5  # bounded by the fine tier's 5 slots
    assert util[-1] == store.hosts["a"].gpus()[0].util_pct
    assert hist.latest("util_pct") == store.hosts["a"].gpus()[0].util_pct
    mem_pct = store.hosts["a"].gpus()[0].mem_pct
    assert mem_pct is not None
    assert hist.latest("mem_pct") == int(mem_pct + 0.5)  # derived by the store, kept to 1 %


def test_history_uses_the_hosts_sample_interval() -> None:
    clock = Clock()
    store = FleetStore(clock=clock)
    store.add_host("a")
    sim = SimNvml("healthy", gpus=1, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="a", describe=sim.describe_process, clock=clock)
    store.apply("a", parse_frame(json.dumps(sampler.hello(2.0))))
    for _ in range(100):
        clock.now += 2
        store.apply("a", parse_frame(json.dumps(sampler.sample())))
    hist = store.hosts["a"].history[0]
    assert hist.interval_s == 2.0
    assert len(hist.series("temp_c", 60)) == 30  # 60 s at 2 s a sample


def test_a_new_hello_replaces_each_gpus_limits() -> None:
    """A host that comes back with other boards (a GPU swapped, MIG changed) is judged and drawn
    against the new hello's limits, never the old one's."""
    store = FleetStore(clock=Clock())
    store.add_host("a")
    sampler = Sampler(SimNvml("healthy", gpus=2), host="a")
    hello = sampler.hello(1.0)
    store.apply("a", parse_frame(json.dumps(hello)))
    record = store.hosts["a"]
    first = record.static(1)
    assert first is not None and first.temp_slowdown_c is not None
    hello["gpus"] = [{**hello["gpus"][0], "temp_slowdown_c": first.temp_slowdown_c - 7}]
    store.apply("a", parse_frame(json.dumps(hello)))
    now = record.static(0)
    assert now is not None and now.temp_slowdown_c == first.temp_slowdown_c - 7
    assert record.static(1) is None  # gone from the new hello
