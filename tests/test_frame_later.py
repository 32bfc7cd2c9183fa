"""A host's GPUs made only when read (gputui/frame_later.py) are the GPUs it sent.

The store keeps a delta's sample unmade and each GPU's changes merged until a
reader asks: a GPU shown on screen or judged by the rules must then be what
the host said that second, however many seconds were merged, whether it is
asked alone or with the whole host. Here a stream is read both ways at once,
each sample made whole as it comes and made only now and then, in a random
pattern of single GPUs and whole samples, and the two must agree.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from gputui.agent.changes import ChangeEncoder
from gputui.agent.sampler import Sampler
from gputui.fleet.store import FleetStore
from gputui.frame_decoder import FrameDecoder
from gputui.frames import FrameError, Sample
from gputui.protocol import PROTOCOL_VERSION
from gputui.sim.nvml import SimNvml
from tests.health_data import T0, Clock, gpu


def wire(frame: dict[str, Any]) -> str:
    return json.dumps(frame)


@pytest.mark.parametrize("scenario", ["incident", "mixed"])
def test_gpus_made_when_read_are_the_gpus_of_that_second(scenario: str) -> None:
    clock = Clock(1000.0)
    sim = SimNvml(scenario, seed=11, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="node-a", describe=sim.describe_process, clock=clock, wall=clock)
    encoder, eager, lazy, store = ChangeEncoder(30), FrameDecoder(), FrameDecoder(), FleetStore(clock=clock)
    store.add_host("node-a")
    hello = wire(encoder.hello(sampler.hello(1.0)))
    eager.frame(hello)
    store.apply("node-a", lazy.frame_later(hello), lazy.columns)
    pick = random.Random(3)
    reads = {"none": 0, "one": 0, "whole": 0}
    merged_seconds = 0
    try:
        for _ in range(90):
            clock.t += 1.0
            line = wire(encoder.encode(sampler.sample()))
            want = eager.frame(line)
            store.apply("node-a", lazy.frame_later(line), lazy.columns)
            assert isinstance(want, Sample)
            record = store.hosts["node-a"]
            how = pick.choice(["none", "none", "one", "whole"])
            reads[how] += 1
            if how == "none":
                merged_seconds += 1
            elif how == "one":
                place = pick.randrange(len(want.gpus))
                assert record.gpu_at(place) == want.gpus[place]
            else:
                got = record.sample
                assert got is not None and got.gpus == want.gpus and got.seq == want.seq and got.t == want.t
                assert got.ledger == want.ledger and got.key == want.key
    finally:
        sim.close()
    assert min(reads.values()) >= 10 and merged_seconds >= 30, reads  # each way of reading, many times


def test_a_change_to_a_process_the_gpu_does_not_run_is_refused_at_once_and_the_last_sample_kept() -> None:
    decoder, store = FrameDecoder(), FleetStore()
    store.add_host("h")
    keyframe = {"type": "sample", "v": PROTOCOL_VERSION, "t": T0, "seq": 1, "key": True, "gpus": [gpu(0), gpu(1)]}
    store.apply("h", decoder.frame_later(wire(keyframe)), decoder.columns)
    good = {"type": "delta", "v": PROTOCOL_VERSION, "t": T0 + 1, "seq": 2, "gpus": [{"index": 1, "util_pct": 3}]}
    store.apply("h", decoder.frame_later(wire(good)), decoder.columns)
    bad = {
        "type": "delta",
        "v": PROTOCOL_VERSION,
        "t": T0 + 2,
        "seq": 3,
        "gpus": [{"index": 0, "util_pct": 99}, {"index": 1, "process_changes": [{"pid": 1, "cpu_pct": 5.0}]}],
    }
    with pytest.raises(FrameError, match="process 1, not on GPU 1"):
        decoder.frame_later(wire(bad))
    sample = store.hosts["h"].sample  # made after the refusal: the second before it, nothing of the bad one
    assert sample is not None and sample.seq == 2
    assert [g.util_pct for g in sample.gpus] == [80, 3]
    after = {"type": "delta", "v": PROTOCOL_VERSION, "t": T0 + 3, "seq": 4, "gpus": [{"index": 0, "util_pct": 1}]}
    with pytest.raises(FrameError, match="no keyframe before them"):  # nothing more until the next keyframe
        decoder.frame_later(wire(after))


def test_a_sample_asked_for_after_its_stream_moved_on_is_an_error_not_another_seconds() -> None:
    decoder = FrameDecoder()
    keyframe = {"type": "sample", "v": PROTOCOL_VERSION, "t": T0, "seq": 1, "key": True, "gpus": [gpu(0)]}
    decoder.frame_later(wire(keyframe))
    first = decoder.frame_later(
        wire({"type": "delta", "v": PROTOCOL_VERSION, "t": T0 + 1, "seq": 2, "gpus": [{"index": 0, "util_pct": 7}]})
    )
    decoder.frame_later(
        wire({"type": "delta", "v": PROTOCOL_VERSION, "t": T0 + 2, "seq": 3, "gpus": [{"index": 0, "util_pct": 8}]})
    )
    assert not isinstance(first, Sample)
    with pytest.raises(RuntimeError, match="sample 2 was asked for after its stream moved on to 3"):
        first.sample()  # type: ignore[union-attr]


def test_a_whole_process_list_sent_replaces_the_changes_merged_before_it() -> None:
    """Seconds merged unread: a process's change, then the GPU's whole list (the same process at
    other figures, and a new one), then a change to the new one. The list sent wins over the change
    before it; the change after it is applied to it."""
    decoder, store = FrameDecoder(), FleetStore()
    store.add_host("h")
    keyframe = {"type": "sample", "v": PROTOCOL_VERSION, "t": T0, "seq": 1, "key": True, "gpus": [gpu(0)]}
    store.apply("h", decoder.frame_later(wire(keyframe)), decoder.columns)
    listed = [{"pid": 4242, "user": "alice", "cpu_pct": 10.0}, {"pid": 4343, "user": "bob", "gpu_mem_mib": 1}]
    changes: list[dict[str, Any]] = [
        {"index": 0, "process_changes": [{"pid": 4242, "cpu_pct": 50.0}]},
        {"index": 0, "processes": listed},
        {"index": 0, "process_changes": [{"pid": 4343, "gpu_mem_mib": 7}]},
    ]
    for seq, change in enumerate(changes, start=2):
        store.apply(
            "h",
            decoder.frame_later(wire({"type": "delta", "v": PROTOCOL_VERSION, "t": T0 + seq, "seq": seq, "gpus": [change]})),
            decoder.columns,
        )
    record = store.hosts["h"]
    assert record.columns.running == (True,)
    processes = record.gpu_at(0).processes
    assert [(p.pid, p.user, p.cpu_pct, p.gpu_mem_mib) for p in processes] == [(4242, "alice", 10.0, None), (4343, "bob", None, 7)]
