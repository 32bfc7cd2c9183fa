"""nvidia-smi's CSV turned into frames: rounds, gaps and error lines."""

from __future__ import annotations

from gputui.frames import Hello, Sample, parse_frame
from gputui.sim.nvidia_smi import gpu_row
from gputui.sim.nvml import SimNvml
from gputui.transport.smi_fallback import GPU_FIELDS, SmiRounds, parse_gpu_line, value


def rows(sim: SimNvml) -> list[dict[str, str | None]]:
    return [parse_gpu_line(gpu_row(sim, i, list(GPU_FIELDS))) for i in range(len(sim.gpus))]


def test_a_round_is_sent_as_soon_as_it_is_complete() -> None:
    sim = SimNvml("healthy", gpus=4, processes="synthetic", clock=lambda: 0.0)
    rounds = SmiRounds("h", 1.0)
    frames = []
    for row in rows(sim):
        frames += rounds.add(row)
    assert frames == []  # the first round's size is not known until the index goes back
    first_of_next = rows(sim)
    frames += rounds.add(first_of_next[0])
    kinds = [f["type"] for f in frames]
    assert kinds == ["hello", "sample"]
    for row in first_of_next[1:]:
        frames += rounds.add(row)
    assert [f["type"] for f in frames] == ["hello", "sample", "sample"]  # no waiting for round three
    hello, sample = parse_frame(__import__("json").dumps(frames[0])), parse_frame(__import__("json").dumps(frames[2]))
    assert isinstance(hello, Hello) and len(hello.gpus) == 4
    assert isinstance(sample, Sample) and [g.index for g in sample.gpus] == [0, 1, 2, 3]
    assert all(g.throttle is None and g.remapped_rows is None for g in sample.gpus)  # nvidia-smi does not say


def test_not_available_spellings_are_null() -> None:
    for text in ("[N/A]", "[Not Supported]", " N/A", "", "[Unknown Error]"):
        assert value(text) is None
    assert value(" 42 ") == "42"


def test_a_missing_gpu_0_does_not_grow_a_round_for_ever() -> None:
    sim = SimNvml("healthy", gpus=3, processes="synthetic", clock=lambda: 0.0)
    rounds = SmiRounds("h", 1.0)
    frames = []
    for _ in range(3):
        for row in rows(sim)[1:]:  # GPU 0 errors out every round
            frames += rounds.add(row)
    samples = [f for f in frames if f["type"] == "sample"]
    assert len(samples) == 3 and all(len(f["gpus"]) == 2 for f in samples)  # type: ignore[arg-type]
