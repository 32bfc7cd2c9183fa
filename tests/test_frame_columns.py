"""A host's GPUs by field (gputui/frame_columns.py) always say what its GPUs say.

The history's rows and the health rules' look at a whole host read the
columns, not the GPUs: a column out of step with its GPUs would draw a wrong
chart or hide a hot GPU. Here the columns a host's decoder makes, delta by
delta, are checked against the GPUs of every sample it rebuilds, over
simulated hosts with incidents (GPUs lost, throttled, ECC errors), and the
store's history against what each GPU sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gputui.agent.changes import ChangeEncoder
from gputui.agent.sampler import Sampler
from gputui.fleet.store import FleetStore
from gputui.frame_columns import FIELDS, GpuColumns, columns_of
from gputui.frame_decoder import FrameDecoder
from gputui.frames import Sample
from gputui.protocol import PROTOCOL_VERSION
from gputui.sim.nvml import SimNvml
from tests.health_data import T0, Clock, Fleet, gpu


def wire(frame: dict[str, Any]) -> str:
    return json.dumps(frame)


def expected(sample: Sample) -> GpuColumns:
    """What each column should hold, read field by field from the sample's GPUs."""
    fields = [tuple(getattr(g, name) for g in sample.gpus) for name in FIELDS]
    return GpuColumns._make([*fields, tuple(bool(g.processes) for g in sample.gpus)])


@pytest.mark.parametrize("scenario", ["incident", "mixed", "healthy"])
def test_the_columns_of_every_decoded_sample_are_its_gpus_fields(scenario: str) -> None:
    clock = Clock(1000.0)
    sim = SimNvml(scenario, seed=5, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="node-a", describe=sim.describe_process, clock=clock, wall=clock)
    encoder, decoder, store = ChangeEncoder(10), FrameDecoder(), FleetStore(clock=clock)
    store.add_host("node-a")
    store.apply("node-a", decoder.frame(wire(encoder.hello(sampler.hello(1.0)))), decoder.columns)
    remade: set[str] = set()
    try:
        for _ in range(45):
            clock.t += 1.0
            before = decoder.columns
            store.apply("node-a", decoder.frame_later(wire(encoder.encode(sampler.sample()))), decoder.columns)
            record = store.hosts["node-a"]
            columns, sample = record.columns, record.sample  # the sample made whole only now
            assert columns is decoder.columns and isinstance(sample, Sample)
            assert columns == columns_of(sample.gpus)
            assert columns == expected(sample)
            if before is not None and not sample.key:
                names = (*FIELDS, "running")
                remade |= {name for name, old, new in zip(names, before, columns, strict=True) if old is not new}
    finally:
        sim.close()
    assert {"util_pct", "power_w"} <= remade, remade  # the columns a delta changes are made anew


def test_changes_to_lists_models_and_lost_gpus_reach_the_columns() -> None:
    """What the simulated stream above rarely changes: clock-event reasons, ECC counts, a GPU
    lost (sent as ``null`` where it is not), processes; and a column no change named stays the
    tuple it was."""
    decoder = FrameDecoder()
    keyframe = {"type": "sample", "v": PROTOCOL_VERSION, "t": T0, "seq": 1, "key": True, "gpus": [gpu(0), gpu(1)]}
    first = decoder.frame(wire(keyframe))
    assert isinstance(first, Sample) and decoder.columns == columns_of(first.gpus)
    kept = decoder.columns
    changes = [
        {"index": 1, "throttle": ["hw_slowdown"], "ecc": {"volatile_uncorrected": 2}, "temp_c": 91},
        {"index": 0, "lost": True, "processes": None},
        {"index": 0, "lost": None, "field_errors": {"temp_c": "Unknown Error"}},
    ]
    for seq, change in enumerate(changes, start=2):
        delta = {"type": "delta", "v": PROTOCOL_VERSION, "t": T0 + seq, "seq": seq, "gpus": [change]}
        sample = decoder.frame(wire(delta))
        assert isinstance(sample, Sample) and decoder.columns == columns_of(sample.gpus) == expected(sample), change
    columns = decoder.columns
    assert columns is not None and kept is not None
    assert columns.throttle == (kept.throttle[0], ["hw_slowdown"]) and columns.temp_c == (60, 91)
    assert columns.ecc[1] is not None and columns.ecc[1].volatile_uncorrected == 2
    assert columns.lost == (False, False) and columns.field_errors == ({"temp_c": "Unknown Error"}, None)
    assert columns.running == (False, kept.running[1])  # GPU 0's processes sent as none
    assert columns.util_pct is kept.util_pct and columns.nvlink is kept.nvlink  # never named: the same tuples


def test_the_history_follows_each_gpu_and_leaves_a_gap_for_one_missing() -> None:
    fleet = Fleet(gpus=2)
    fleet.sample(gpu(0, util_pct=10, temp_c=50), gpu(1, util_pct=20, temp_c=51))
    fleet.sample(gpu(0, util_pct=30, temp_c=52))  # GPU 1 missing from this one
    fleet.sample(gpu(1, util_pct=40, temp_c=53), gpu(0, util_pct=50, temp_c=54))  # another order
    history = fleet.store.hosts["gpu-01"].history
    assert history[0].series("util_pct", 3.0) == [10.0, 30.0, 50.0]
    assert history[1].series("util_pct", 3.0) == [20.0, None, 40.0]
    assert history[0].series("temp_c", 3.0) == [50.0, 52.0, 54.0]
    assert history[1].series("temp_c", 3.0) == [51.0, None, 53.0]
