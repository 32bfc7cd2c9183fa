"""The dashboard's heap is frozen once its fleet has connected (gputui/ui/heap.py): not while a
host is still connecting or waiting for its first sample, at the deadline if one never does, and never twice. What is frozen is
still freed by its reference count: a frame replaced after the freeze is gone, not kept."""

from __future__ import annotations

import gc
import json
import os
import weakref
from collections.abc import Iterator

import pytest

from gputui.agent.sampler import Sampler
from gputui.fleet.store import FleetStore, HostState
from gputui.frames import Sample, parse_frame
from gputui.sim.nvml import SimNvml
from gputui.ui.heap import GC_THRESHOLDS, MIDDLE_EARLY, HeapSettler
from tests.ui_apps import Clock


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """The test process's collector as it was: every other test shares it."""
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()


def connect(store: FleetStore, sampler: Sampler, name: str) -> None:
    store.apply(name, parse_frame(json.dumps(sampler.hello(1.0))))
    store.apply(name, parse_frame(json.dumps(sampler.sample())))


def fleet(clock: Clock, names: tuple[str, ...]) -> tuple[FleetStore, dict[str, Sampler], HeapSettler]:
    """A store with ``names`` added (none connected yet), a simulated sampler for each, and a settler."""
    store = FleetStore(clock=clock)
    # Synthetic processes: a stand-in process per job would outlive the test (nothing here closes the sims).
    sims = {name: SimNvml("healthy", seed=i, clock=clock, processes="synthetic") for i, name in enumerate(names)}
    samplers = {name: Sampler(sim, host=name, clock=clock) for name, sim in sims.items()}
    for name in samplers:
        store.add_host(name)
    return store, samplers, HeapSettler(store, clock=clock, within_s=60)


def test_the_heap_is_frozen_once_every_host_has_connected() -> None:
    clock = Clock()
    store, samplers, settler = fleet(clock, ("a", "b"))
    connect(store, samplers["a"], "a")
    assert not settler.check() and gc.get_freeze_count() == 0  # b is still connecting
    store.apply("b", parse_frame(json.dumps(samplers["b"].hello(1.0))))
    assert store.hosts["b"].history == {}  # made with b's first sample: frozen only after it
    assert not settler.check() and gc.get_freeze_count() == 0
    store.apply("b", parse_frame(json.dumps(samplers["b"].sample())))
    assert settler.check() and gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    assert settler.check() and gc.get_freeze_count() == frozen  # once

    before = store.hosts["b"].sample
    assert isinstance(before, Sample)
    gone = weakref.ref(before)
    del before
    store.apply("b", parse_frame(json.dumps(samplers["b"].sample())))
    assert gone() is None  # frozen, yet freed as soon as the next frame replaced it


class Node:
    """Something that can be in a reference cycle and be weakly referred to."""

    me: Node | None = None


def test_the_freeze_frees_new_garbage_without_walking_the_whole_heap() -> None:
    """The freeze must not keep what is already garbage, and must not hold the event loop for a
    full collection either (150 to 600 ms at thousands of hosts): it collects the young and
    middle generations only, so the oldest generation's collection count does not move."""
    clock = Clock()
    store, samplers, settler = fleet(clock, ("a",))
    connect(store, samplers["a"], "a")
    cycle = Node()
    cycle.me = cycle  # garbage only the collector can free
    gone = weakref.ref(cycle)
    del cycle
    gc.disable()  # only the settler's own collections are counted, none the collector starts by itself
    try:
        full_before = gc.get_stats()[2]["collections"]
        assert settler.check() and gc.get_freeze_count() > 0
        full_after = gc.get_stats()[2]["collections"]
    finally:
        gc.enable()
    assert gone() is None  # freed, not frozen
    assert full_after == full_before


def test_a_host_that_turned_stale_before_its_first_sample_is_still_waited_for() -> None:
    """A dashboard behind its hosts reads a hello long before the sample after it: that host's
    history is still to be made, and frozen without it, it would be walked by every full collection."""
    clock = Clock()
    store, samplers, settler = fleet(clock, ("a", "slow"))
    store.apply("slow", parse_frame(json.dumps(samplers["slow"].hello(1.0))))
    clock.now += 30
    connect(store, samplers["a"], "a")
    assert store.hosts["slow"].state(clock()) is HostState.STALE
    assert not settler.check() and gc.get_freeze_count() == 0
    store.apply("slow", parse_frame(json.dumps(samplers["slow"].sample())))
    assert settler.check() and gc.get_freeze_count() > 0


def test_a_host_that_never_connects_does_not_hold_the_freeze_off_past_the_deadline() -> None:
    clock = Clock()
    store = FleetStore(clock=clock)
    store.add_host("never")
    settler = HeapSettler(store, clock=clock, within_s=60)
    clock.now += 59
    assert not settler.check() and gc.get_freeze_count() == 0
    clock.now += 1
    assert settler.check() and gc.get_freeze_count() > 0


def rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def test_memory_freed_between_blocks_still_in_use_goes_back_to_the_system() -> None:
    """Replaced frames leave glibc's heap full of free holes that it keeps until asked: the dashboard
    asks once a minute, else its RSS grows for as long as it runs (179 to 222 MB in 5 min at 1,024 hosts)."""
    settler = HeapSettler(FleetStore(), within_s=60)
    assert settler.trim is not None  # glibc: the C library of the machines the dashboard runs on
    blocks = [bytearray(4_000) for _ in range(20_000)]  # 80 MB, each block from malloc (over 512 B)
    kept = blocks[::16]  # one in sixteen lives on, so free() cannot shrink the heap past the holes
    del blocks
    holding = rss_kb()
    settler.give_back()
    assert rss_kb() < holding - 25_000  # a third of the 75 MB freed, at least (49 MB here), is the system's again
    assert len(kept) == 1_250


def test_the_apps_timer_takes_the_older_generations_before_the_collector_would() -> None:
    """The app collects the young generation on a timer, and the older ones there too once they are
    nearly due: left to the collector's own trigger they came inside whatever allocated next, most
    often the overview's redraw, and that turn held keystrokes up two and three times as long."""
    collected: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected.append(info["generation"])

    before = gc.get_threshold()
    _, middle, oldest = GC_THRESHOLDS
    gc.set_threshold(1_000_000, middle, oldest)  # the dashboard's, and no collection but the test's own
    gc.callbacks.append(record)
    try:
        gc.collect()  # every count starts at 0
        for _ in range(oldest - 1):  # the oldest generation one middle collection short of due
            gc.collect(1)
        for _ in range(middle - MIDDLE_EARLY - 1):
            gc.collect(0)
        collected.clear()
        for _ in range(3):
            HeapSettler.collect_young()
        for _ in range(middle - MIDDLE_EARLY):
            gc.collect(0)
        HeapSettler.collect_young()
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*before)
    # Young; the middle one, nearly due; young again; then, the middle one nearly due again and
    # the oldest due, a full collection.
    assert collected == [0, 1, 0] + [0] * (middle - MIDDLE_EARLY) + [2]
