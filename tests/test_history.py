"""Bounded per-GPU history: compact rings, the coarse roll-up, spans, memory."""

from __future__ import annotations

import math
import sys
import tracemalloc

import pytest

from gputui.fleet.history import (
    COARSE_SAMPLES,
    FINE_SAMPLES,
    MAX_COLUMNS,
    METRICS,
    ROLLUP,
    GpuHistory,
    HostHistory,
    Ring,
    history_bytes,
)
from gputui.frames import GpuSample

FLEET_GPUS = 1024 * 8
MB = 1_000_000


def test_ring_wraps_around_keeping_the_newest_values_in_order() -> None:
    ring = Ring(5, "H")
    for v in range(1, 13):
        ring.push(v * 100)
    assert ring.values() == [800.0, 900.0, 1000.0, 1100.0, 1200.0]
    assert ring.values(2) == [1100.0, 1200.0]
    assert ring.latest() == 1200.0
    assert (ring.capacity, ring.count) == (5, 5)


def test_ring_before_it_is_full_holds_only_what_was_pushed() -> None:
    ring = Ring(10)
    assert ring.values() == []
    assert ring.latest() is None
    ring.push(7)
    ring.push(8)
    assert ring.values() == [7.0, 8.0]
    assert ring.values(5) == [7.0, 8.0]
    assert ring.count == 2


def test_missing_values_stay_gaps_not_zero() -> None:
    ring = Ring(4)
    for v in (0.0, None, math.nan, 3.0):
        ring.push(v)
    assert ring.values() == [0.0, None, None, 3.0]
    hist = GpuHistory()
    hist.push(50, None, 60, None)
    assert hist.latest("util_pct") == 50.0
    assert hist.latest("mem_pct") is None
    assert hist.latest("power_w") is None
    assert hist.series("mem_pct", 60) == [None]


def test_out_of_range_values_are_clamped_and_rounded() -> None:
    small = Ring(6, "B")
    for v in (-5, 254.4, 300, 1e9, math.inf, 41.6):
        small.push(v)
    assert small.values() == [0.0, 254.0, 254.0, 254.0, 254.0, 42.0]
    watts = Ring(3, "H")
    for v in (-1.0, 700.4, 1_000_000.0):
        watts.push(v)
    assert watts.values() == [0.0, 700.0, 65534.0]  # 65535 means "no value"


def test_ring_refuses_a_signed_or_float_typecode() -> None:
    with pytest.raises(ValueError, match="unsigned"):
        Ring(4, "f")


def test_coarse_tier_rolls_up_ten_samples_into_their_mean_ignoring_gaps() -> None:
    hist = GpuHistory()
    for i in range(ROLLUP):
        util = 10.0 * i  # 0 .. 90, mean 45
        temp = None if i % 2 else 60.0 + i  # 60, 62, .. 68 present, mean 64
        hist.push(util, None, temp, 300.0)
    assert hist.coarse[METRICS.index("util_pct")].values() == [45.0]
    assert hist.coarse[METRICS.index("temp_c")].values() == [64.0]
    assert hist.coarse[METRICS.index("mem_pct")].values() == [None]  # all ten missing
    assert hist.coarse[METRICS.index("power_w")].values() == [300.0]
    hist.push(99, 1, 1, 1)  # an open slot is not in the coarse tier yet
    assert hist.coarse[0].count == 1


def test_series_picks_the_fine_tier_for_minutes_and_the_coarse_tier_for_an_hour() -> None:
    hist = GpuHistory(1.0)
    for i in range(1000):
        hist.push(i % 100, 50, 70, 400)
    one_min = hist.series("util_pct", 60)
    assert len(one_min) == 60
    assert one_min[-1] == 99.0  # (999 % 100): the newest sample, at 1 s resolution
    assert one_min[0] == 40.0
    assert len(hist.series("util_pct", 600)) == FINE_SAMPLES
    one_hour = hist.series("util_pct", 3600)
    assert len(one_hour) == 1000 // ROLLUP  # only the slots that exist
    assert one_hour[-1] == 95.0  # mean of 90 .. 99, rounded to whole percent
    assert hist.step_s(60) == 1.0
    assert hist.step_s(3600) == 10.0


def test_series_after_an_hour_and_more_is_bounded_by_the_coarse_tier() -> None:
    hist = GpuHistory()
    for i in range(4000):
        hist.push(i % 7, None, None, None)
    assert len(hist.series("util_pct", 3600)) == COARSE_SAMPLES
    assert len(hist.series("util_pct", 7200)) == COARSE_SAMPLES


def test_a_two_second_interval_maps_spans_to_half_as_many_slots() -> None:
    hist = GpuHistory(interval_s=2.0)
    for i in range(2000):
        hist.push(i % 50, None, None, None)
    assert len(hist.series("util_pct", 60)) == 30
    assert len(hist.series("util_pct", 600)) == 300
    assert len(hist.series("util_pct", 1200)) == FINE_SAMPLES  # 20 min still fits the fine tier
    assert len(hist.series("util_pct", 3600)) == 180  # 3600 s / (2 s * 10) coarse slots
    assert hist.step_s(600) == 2.0
    assert hist.step_s(3600) == 20.0


def test_a_fractional_interval_does_not_round_up_a_span() -> None:
    hist = GpuHistory(interval_s=0.1)
    for _ in range(700):
        hist.push(1, 1, 1, 1)
    assert len(hist.series("util_pct", 60)) == FINE_SAMPLES  # 600 / 0.1 is not 601 slots
    assert hist.series("util_pct", 0) == []


def test_history_bytes_is_the_exact_size_of_the_arrays() -> None:
    hist = GpuHistory()
    arrays = sum(ring.nbytes for ring in (*hist.fine, *hist.coarse))
    assert history_bytes(1) == arrays == (3 * 1 + 2) * (FINE_SAMPLES + COARSE_SAMPLES)
    assert history_bytes(FLEET_GPUS) == FLEET_GPUS * arrays


def _deep_size(hist: GpuHistory) -> int:
    """Bytes of a GPU's own history and every object it owns (small shared ints aside): its
    rings, and the host history of one GPU they are columns of."""
    host = hist.host
    rings = (*hist.fine, *hist.coarse)
    tiers = (*host.fine, *host.coarse)
    total = sys.getsizeof(hist) + sys.getsizeof(hist.fine) + sys.getsizeof(hist.coarse)
    total += sum(sys.getsizeof(r) for r in rings)
    total += sys.getsizeof(host) + sys.getsizeof(host.fine) + sys.getsizeof(host.coarse)
    total += sys.getsizeof(host.gpus) + sys.getsizeof(host.indices)
    total += sum(sys.getsizeof(t) + sys.getsizeof(t.data) for t in tiers)
    return total


def test_an_hour_of_history_for_a_full_fleet_stays_under_100_mb() -> None:
    tracemalloc.start()
    try:
        fleet = [GpuHistory(1.0) for _ in range(FLEET_GPUS)]
        for hist in fleet[:8]:  # some GPUs a full hour in: memory must not grow with use
            for i in range(3600):
                hist.push(i % 101, 50.5, 65, 612.7)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 100 * MB
    assert peak < 100 * MB
    assert history_bytes(FLEET_GPUS) <= current  # the arrays themselves are really there
    per_gpu = _deep_size(fleet[0])
    assert per_gpu * FLEET_GPUS < 100 * MB
    assert _deep_size(fleet[0]) == _deep_size(fleet[7])  # a used history is no bigger


def _gpu(
    index: int, util: int | None, used: int | None = 40_000, temp: int | None = 60, power: float | None = 300.4
) -> GpuSample:
    return GpuSample(index=index, util_pct=util, mem_used_mib=used, mem_total_mib=80_000, temp_c=temp, power_w=power)


def test_each_gpu_of_a_host_reads_as_a_history_of_its_own() -> None:
    """A host's GPUs share one buffer a row per sample; each GPU's series, latest and coarse
    slots are what a GPU kept alone gives, out-of-range, missing and NaN values included."""
    host = HostHistory([0, 1, 2], 2.0)
    alone = {i: GpuHistory(2.0) for i in range(3)}
    for step in range(700):
        gpus = [
            _gpu(0, step % 101, used=None if step % 9 == 0 else 8_000 * (step % 11)),
            _gpu(
                1,
                300 if step % 5 == 0 else step % 7,
                temp=None if step % 3 else 255,
                power=math.nan if step % 4 == 0 else 70_000.0,
            ),
            _gpu(2, None, temp=-4, power=step * 0.5),
        ]
        host.push(gpus)
        for g in gpus:
            alone[g.index].push(g.util_pct, g.mem_pct, g.temp_c, g.power_w)
    for index, own in alone.items():
        shared = host.gpus[index]
        for metric in METRICS:
            for span in (2, 120, 1200, 1202, 7200):
                assert shared.series(metric, span) == own.series(metric, span), (index, metric, span)
            assert shared.latest(metric) == own.latest(metric)
        assert shared.step_s(7200) == own.step_s(7200) == 20.0
    assert host.gpus[1].series("temp_c", 6) == [None, None, 254.0]  # 255 is kept as the most a byte holds, not a gap
    assert host.gpus[2].latest("temp_c") == 0.0 and host.gpus[2].latest("util_pct") is None


def test_a_gpu_missing_from_a_sample_is_a_gap_and_a_new_one_gets_a_column() -> None:
    host = HostHistory([0, 1], 1.0)
    host.push([_gpu(0, 10), _gpu(1, 11)])
    host.push([_gpu(1, 21), _gpu(0, 20)])  # another order: each value still goes to its own GPU
    host.push([_gpu(0, 30)])  # GPU 1 gone from this sample
    host.push([_gpu(0, 40), _gpu(1, 41), _gpu(5, 45)])  # GPU 5 is new
    assert host.gpus[0].series("util_pct", 60) == [10.0, 20.0, 30.0, 40.0]
    assert host.gpus[1].series("util_pct", 60) == [11.0, 21.0, None, 41.0]
    assert host.gpus[5].series("util_pct", 60) == [None, None, None, 45.0]  # it was not there before
    assert host.gpus[5].latest("power_w") == 300.0
    host.push([])  # every GPU gone: a gap for each
    assert [host.gpus[i].latest("util_pct") for i in (0, 1, 5)] == [None, None, None]


def test_a_host_that_lists_no_gpu_at_first_keeps_no_rows_until_one_comes() -> None:
    host = HostHistory([], 1.0)
    host.push([])
    host.push([_gpu(3, 50)])
    assert host.gpus[3].series("util_pct", 60) == [50.0]


def test_a_host_naming_more_gpus_than_any_server_has_keeps_history_for_the_first_ones() -> None:
    """An agent gone wrong that names a new GPU each sample (or thousands at once) cannot make
    every sample cost more than the last: past ``MAX_COLUMNS`` GPUs, the rest have no history."""
    host = HostHistory([], 1.0)
    for n in range(MAX_COLUMNS + 40):
        host.push([_gpu(0, 50), _gpu(1000 + n, 60)])
    assert len(host.indices) == MAX_COLUMNS
    assert len(host.gpus[0].series("util_pct", 600)) == MAX_COLUMNS + 40
    assert 1000 + MAX_COLUMNS - 2 in host.gpus and 1000 + MAX_COLUMNS - 1 not in host.gpus
    wide = HostHistory(range(MAX_COLUMNS * 2), 1.0)
    wide.push([_gpu(i, 10) for i in range(MAX_COLUMNS * 2)])
    assert len(wide.gpus) == MAX_COLUMNS and wide.gpus[MAX_COLUMNS - 1].latest("util_pct") == 10.0
