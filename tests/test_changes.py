"""Samples as changes (``gputui agent --changes``): keyframes and deltas from the
agent, rebuilt by the dashboard's FrameDecoder into exactly the samples a whole-sample
agent sends, and bad streams refused plainly, never guessed at."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gputui.agent.changes import ChangeEncoder, gpu_changes
from gputui.agent.main import FrameWriter
from gputui.agent.sampler import Sampler
from gputui.frame_decoder import FrameDecoder
from gputui.frames import FrameError, Hello, Sample, parse_frame, parse_line
from gputui.protocol import MAX_FRAME_BYTES
from gputui.record.player import ReplayPlayer
from gputui.record.reader import Recording
from gputui.sim.nvml import SimNvml
from gputui.sources.demo import DemoFleet, DemoLink
from gputui.sources.demo_feed import host_names
from tests.demo_lines import taken
from tests.recordings import write_sim_recording


class Clock:
    """Simulated time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wire(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


def whole(sample: Sample) -> dict[str, Any]:
    """A sample's content; ``key`` only says which form it came in."""
    return sample.model_dump(exclude={"key"})


@pytest.fixture(params=["incident", "mixed", "healthy"])
def fleet_host(request: pytest.FixtureRequest) -> Iterator[tuple[Sampler, Clock]]:
    clock = Clock()
    sim = SimNvml(request.param, seed=3, processes="synthetic", clock=clock)
    yield Sampler(sim, host="node-a", describe=sim.describe_process, clock=clock, wall=clock), clock
    sim.close()


def stream(sampler: Sampler, clock: Clock, samples: int, every: int) -> list[tuple[str, str]]:
    """Each sample as the agent writes it without and with ``--changes``: (whole, changes)."""
    encoder = ChangeEncoder(every)
    hello = sampler.hello(1.0)
    out = [(wire(hello), wire(encoder.hello(hello)))]
    for _ in range(samples):
        clock.now += 1.0
        frame = sampler.sample()
        full = wire(frame)  # before the encoder sees it, as the agent writes one or the other
        out.append((full, wire(encoder.encode(frame))))
    return out


def test_keyframes_and_changes_rebuild_exactly_the_whole_samples(fleet_host: tuple[Sampler, Clock]) -> None:
    sampler, clock = fleet_host
    decoder = FrameDecoder()
    sizes = []
    for n, (full, changes) in enumerate(stream(sampler, clock, 65, every=10)):
        want, got = parse_frame(full), decoder.frame(changes)
        if isinstance(want, Sample):
            assert isinstance(got, Sample) and whole(got) == whole(want), f"sample {want.seq}"
            assert got.key is ((n - 1) % 10 == 0), "a keyframe first and every 10 samples"
            sizes.append((len(full), len(changes)))
        else:
            assert isinstance(got, Hello) and got.changes == 1 and got.keyframe_every == 10
    deltas = [c / f for f, c in sizes if c < f]
    assert len(deltas) == 65 - 7 and max(deltas) < 0.5, "changes are a fraction of a whole sample"


def test_unchanged_parts_are_the_same_objects(fleet_host: tuple[Sampler, Clock]) -> None:
    """What did not move is not parsed again: the GPUs and processes of the sample before are reused."""
    sampler, clock = fleet_host
    decoder = FrameDecoder()
    frames = [decoder.frame(c) for _, c in stream(sampler, clock, 3, every=30)]
    before, after = frames[-2], frames[-1]
    assert isinstance(before, Sample) and isinstance(after, Sample)
    for a, b in zip(before.gpus, after.gpus, strict=True):
        for name in type(a).model_fields:
            if getattr(a, name) == getattr(b, name) and name != "processes":
                assert getattr(a, name) is getattr(b, name), name


def sample_lines(sampler: Sampler, clock: Clock, samples: int, every: int) -> list[str]:
    return [c for _, c in stream(sampler, clock, samples, every)]


def test_a_missed_line_is_refused_until_the_next_keyframe(fleet_host: tuple[Sampler, Clock]) -> None:
    sampler, clock = fleet_host
    lines = sample_lines(sampler, clock, 25, every=10)  # hello, then samples 0..24: keyframes 0, 10, 20
    decoder = FrameDecoder()
    for line in lines[:5]:  # hello, samples 0..3
        decoder.frame(line)
    with pytest.raises(FrameError, match="changes of sample 5 follow sample 3: waiting for the next keyframe"):
        decoder.frame(lines[6])  # sample 4 was lost
    for line in lines[7:11]:  # 6..9: still no base, though they follow each other
        with pytest.raises(FrameError, match="no keyframe before them"):
            decoder.frame(line)
    keyframe = decoder.frame(lines[11])
    assert isinstance(keyframe, Sample) and keyframe.seq == 10 and keyframe.key
    for line in lines[12:]:
        got = decoder.frame(line)
        assert isinstance(got, Sample) and got.seq == parse_line(line).seq  # type: ignore[union-attr]


def test_changes_before_any_keyframe_are_refused(fleet_host: tuple[Sampler, Clock]) -> None:
    sampler, clock = fleet_host
    lines = sample_lines(sampler, clock, 3, every=30)
    decoder = FrameDecoder()
    decoder.frame(lines[0])
    with pytest.raises(FrameError, match="changes of sample 1 came with no keyframe before them"):
        decoder.frame(lines[2])


def test_a_new_hello_waits_for_its_own_keyframe(fleet_host: tuple[Sampler, Clock]) -> None:
    sampler, clock = fleet_host
    lines = sample_lines(sampler, clock, 3, every=30)
    decoder = FrameDecoder()
    for line in lines[:3]:
        decoder.frame(line)
    decoder.frame(lines[0])  # the agent started again
    with pytest.raises(FrameError, match="no keyframe"):
        decoder.frame(lines[3])


def delta(**gpu: Any) -> str:
    return wire({"type": "delta", "v": 1, "t": 2.0, "seq": 1, "gpus": [gpu]})


KEYFRAME = wire(
    {"type": "sample", "v": 1, "t": 1.0, "seq": 0, "key": True,
     "gpus": [{"index": 0, "util_pct": 5, "processes": [{"pid": 10, "cpu_pct": 1.0}]}]}
)  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (delta(index=3, util_pct=7), "changes for GPU 3, which the keyframe did not have"),
        (delta(index=0, process_changes=[{"pid": 11, "cpu_pct": 2.0}]), "for process 11, not on GPU 0"),
        (delta(index=0, util_pct="lots"), "malformed frame: delta.gpus.0.util_pct"),
    ],
)
def test_a_change_that_does_not_fit_is_refused_and_the_stream_waits(line: str, message: str) -> None:
    decoder = FrameDecoder()
    decoder.frame(KEYFRAME)
    with pytest.raises(FrameError, match=message):
        decoder.frame(line)
    if "malformed" not in message:  # a line that cannot be read is not the decoder's: the runner resets the link
        with pytest.raises(FrameError, match="no keyframe"):
            decoder.frame(delta(index=0, util_pct=9))
    got = decoder.frame(KEYFRAME)
    assert isinstance(got, Sample) and got.gpus[0].util_pct == 5


def test_fields_gone_become_unknown_and_a_new_process_list_replaces_the_old() -> None:
    before = {"index": 0, "util_pct": 5, "fan_pct": 30, "processes": [{"pid": 10, "cpu_pct": 1.0, "user": "ann"}]}
    now = {"index": 0, "util_pct": 5, "processes": [{"pid": 12, "cpu_pct": 3.0}]}
    changes = gpu_changes(before, now)
    assert changes == {"index": 0, "fan_pct": None, "processes": [{"pid": 12, "cpu_pct": 3.0}]}
    moved = gpu_changes(before, {**before, "processes": [{"pid": 10, "cpu_pct": 2.0}]})
    assert moved == {"index": 0, "process_changes": [{"pid": 10, "cpu_pct": 2.0, "user": None}]}
    decoder = FrameDecoder()
    decoder.frame(wire({"type": "sample", "v": 1, "t": 1.0, "seq": 0, "key": True, "gpus": [before]}))
    got = decoder.frame(delta(**changes))
    assert isinstance(got, Sample)
    assert got.gpus[0].fan_pct is None and got.gpus[0].util_pct == 5
    assert [(p.pid, p.cpu_pct, p.user) for p in got.gpus[0].processes] == [(12, 3.0, None)]


def test_whole_frames_are_expected_where_no_decoder_reads_them() -> None:
    with pytest.raises(FrameError, match="changes of sample 1 where whole frames were expected"):
        parse_frame(delta(index=0, util_pct=1))


def test_the_agent_sends_changes_when_asked() -> None:
    argv = [sys.executable, "-m", "gputui", "agent", "--sim", "mixed", "--gpus", "2", "--sim-processes", "synthetic",
            "--interval", "0.01", "--count", "12", "--changes", "--keyframe-every", "5"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    kinds = [json.loads(line)["type"] + ("*" if json.loads(line).get("key") else "") for line in lines]
    assert kinds == ["hello", "sample*", *["delta"] * 4, "sample*", *["delta"] * 4, "sample*", "delta"]
    decoder = FrameDecoder()
    frames = [decoder.frame(line) for line in lines]
    assert [f.seq for f in frames if isinstance(f, Sample)] == list(range(12))
    assert all(len(f.gpus) == 2 for f in frames if isinstance(f, Sample))


def test_the_agent_refuses_a_keyframe_interval_below_one() -> None:
    argv = [sys.executable, "-m", "gputui", "agent", "--sim", "healthy", "--once", "--changes", "--keyframe-every", "0"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--keyframe-every must be at least 1" in out.stderr


def timeless(sample: Sample) -> dict[str, Any]:
    """A sample's content but its processes' start times: the simulator takes them from the real
    clock, so two runs of the same simulated fleet differ there and nowhere else."""
    return sample.model_dump(exclude={"key": True, "gpus": {"__all__": {"processes": {"__all__": {"started_at"}}}}})


@pytest.mark.parametrize("offset", [1.5, 13.0, 47.5, 61.0, 119.0])
def test_a_recording_of_changes_replays_as_the_whole_samples_would(tmp_path: Path, offset: float) -> None:
    """The same simulated fleet recorded twice, from agents sending whole samples and
    changes: a seek anywhere (from the keyframe before it) shows the same samples."""
    wholes, changes = tmp_path / "whole.gtrec", tmp_path / "changes.gtrec"
    write_sim_recording(wholes, hosts=3, seconds=120)
    write_sim_recording(changes, hosts=3, seconds=120, keyframe_every=30)
    players = [ReplayPlayer(Recording.open(p)) for p in (wholes, changes)]
    for player in players:
        player.seek(player.recording.ended_at)
        player.seek(player.recording.started_at + offset)  # backwards: rebuilt from a keyframe
    want, got = (p.store.hosts for p in players)
    assert list(got) == list(want) == host_names(3)
    for name, record in want.items():
        assert record.sample is not None, "a sample by then"
        replayed = got[name].sample
        assert replayed is not None and timeless(replayed) == timeless(record.sample), name
        assert got[name].bad_frames == 0 and got[name].error is None
        # A keyframe holds the changes since the last whole sample: played, they give the chart
        # those samples too, where whole samples give only the latest. The rest is the same.
        for index, history in record.history.items():
            want_series = history.series("util_pct", 60)
            assert got[name].history[index].series("util_pct", 60)[-len(want_series) :] == want_series


async def test_a_demo_host_read_again_starts_at_a_keyframe() -> None:
    """The demo's feed does not start again for a new connection, as an agent would: the
    changes that come before the next keyframe are passed over, so a fresh decoder never
    meets a change it cannot apply."""
    fleet = DemoFleet(1, 2, "mixed", 0, 0.02)
    fleet.keyframe_every = 5
    link = DemoLink(fleet.names[0], fleet)
    try:
        seen = await taken(link, 4)  # hello, a keyframe, changes; then the connection is reset (a bad frame)
        assert [json.loads(line)["type"] for line in seen] == ["hello", "sample", "delta", "delta"]
        decoder = FrameDecoder()
        frames = [decoder.frame(line) for line in await taken(link, 12)]  # across two more keyframes
        assert isinstance(frames[0], Sample) and frames[0].key is True
        seqs = [f.seq for f in frames if isinstance(f, Sample)]
        assert seqs == list(range(seqs[0], seqs[0] + 12))
    finally:
        await fleet.close()


def test_a_keyframe_too_big_to_send_is_followed_by_another(fleet_host: tuple[Sampler, Clock]) -> None:
    """An oversized frame goes out as an error frame: changes after it would follow nothing."""
    sampler, clock = fleet_host
    encoder = ChangeEncoder(30)
    encoder.hello(sampler.hello(1.0))
    writer = FrameWriter(io.StringIO())
    frame = sampler.sample()
    assert writer.write(encoder.encode(frame))
    clock.now += 1.0
    big = dict(encoder.encode(sampler.sample()), padding="x" * MAX_FRAME_BYTES)
    assert big["type"] == "delta" and not writer.write(big)
    encoder.resync()  # as the agent's loop does when write says False
    clock.now += 1.0
    assert encoder.encode(sampler.sample()).get("key") is True


def test_a_sample_already_read_stays_as_it_was_when_the_next_changes_come() -> None:
    """The screens keep showing a host's last sample while the next is decoded: applying changes
    (or failing to, half-way through a delta) never alters a sample handed on before."""
    decoder = FrameDecoder()
    two_gpus = KEYFRAME.replace('"gpus":[{', '"gpus":[{"index":1,"util_pct":6},{', 1)
    first = decoder.frame(two_gpus)
    second = decoder.frame(delta(index=0, util_pct=40))
    assert isinstance(first, Sample) and isinstance(second, Sample)
    shown = whole(second)
    third = decoder.frame(wire({"type": "delta", "v": 1, "t": 3.0, "seq": 2, "gpus": [{"index": 1, "util_pct": 70}]}))
    assert isinstance(third, Sample)
    assert {g.index: g.util_pct for g in third.gpus} == {0: 40, 1: 70}
    bad = {"type": "delta", "v": 1, "t": 4.0, "seq": 3, "gpus": [{"index": 0, "util_pct": 99}, {"index": 5, "util_pct": 1}]}
    with pytest.raises(FrameError, match="changes for GPU 5"):
        decoder.frame(wire(bad))
    assert whole(second) == shown
    assert {g.index: g.util_pct for g in first.gpus} == {0: 5, 1: 6}
    assert {g.index: g.util_pct for g in third.gpus} == {0: 40, 1: 70}
