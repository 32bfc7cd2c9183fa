"""How big a recording gets, and how fast a replay seeks in it.

Run by hand (``python bench/record_size.py``); not a test. It runs the
agent's real sampler on simulated GPUs (the demo's hosts: the ``fleet``
mix, synthetic processes), for ``--hosts`` hosts at 1 s, faster than real
time (a simulated clock), and writes what a recorder would: each host's
hello, then a sample a second with a few milliseconds of arrival jitter,
through the recorder's own ChunkBuilder and RecordingFile. It prints the
file's size, MB per host-hour, the CPU spent compressing, and the time to
open the file and seek to random points with the replay player. With
``--changes N`` the hosts send changes (``gputui agent --changes``, a keyframe every N).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from gputui.agent.changes import ChangeEncoder
from gputui.agent.sampler import Sampler
from gputui.record.player import ReplayPlayer
from gputui.record.reader import Recording
from gputui.record.writer import ChunkBuilder, RecordingFile
from gputui.sim.nvml import SimNvml
from gputui.sources.demo_feed import host_names, scenario_for

EPOCH = 1_795_000_000.0


class SimClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def samplers(hosts: int, gpus: int, clock: SimClock) -> list[tuple[str, Sampler]]:
    out = []
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for("fleet", i), seed=i, gpus=gpus, processes="synthetic", host_no=i, clock=clock)
        out.append((name, Sampler(sim, host=name, source=f"sim:{sim.scenario.name}", describe=sim.describe_process,
                                  clock=clock, wall=lambda: EPOCH + clock.t)))  # fmt: skip
    return out


def line(frame: dict[str, object]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode()


def write(path: Path, hosts: int, gpus: int, seconds: int, changes: int = 0) -> tuple[float, float]:
    """Write the recording; returns (seconds spent sampling, CPU seconds spent compressing and writing)."""
    clock, rng = SimClock(), random.Random(0)
    fleet = samplers(hosts, gpus, clock)
    encoders = {name: ChangeEncoder(changes, phase=i) for i, (name, _) in enumerate(fleet)} if changes else {}
    builder = ChunkBuilder()
    for name, _ in fleet:
        builder.add_host(name)
    out = RecordingFile(path, f"bench: {hosts} hosts x {gpus} GPUs", builder.hosts)
    sampling = writing = 0.0
    for step in range(seconds + 1):
        started = time.process_time()
        frames = [(name, line(encoded(encoders.get(name), s, step))) for name, s in fleet]
        sampling += time.process_time() - started
        started = time.process_time()
        for name, raw in frames:
            t = round(EPOCH + clock.t + rng.uniform(0.001, 0.05), 6)
            if builder.due(t) and (chunk := builder.cut()) is not None:
                out.write(chunk)
            builder.frame(name, t, raw)
        writing += time.process_time() - started
        clock.t += 1.0
    started = time.process_time()
    if (chunk := builder.cut()) is not None:
        out.write(chunk)
    out.close()
    return sampling, writing + time.process_time() - started


def encoded(encoder: ChangeEncoder | None, sampler: Sampler, step: int) -> dict[str, object]:
    """The host's next frame as its agent writes it: whole, or as changes."""
    frame = sampler.hello(1.0) if step == 0 else sampler.sample()
    if encoder is None:
        return frame
    return encoder.hello(frame) if step == 0 else encoder.encode(frame)


async def seeks(path: Path, count: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    rec = Recording.open(path)
    opened = time.perf_counter() - started
    player = ReplayPlayer(rec)
    rng = random.Random(1)
    times = []
    for _ in range(count):
        at = rng.uniform(rec.started_at, rec.ended_at)
        player.seek(rec.ended_at)  # then back: always a rebuild from a keyframe
        started = time.perf_counter()
        player.seek(at)
        times.append(time.perf_counter() - started)
    rec.close()
    return opened, times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=64)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--seeks", type=int, default=20)
    p.add_argument("--changes", type=int, default=0, metavar="N", help="hosts send changes, a keyframe every N")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.gtrec"
        sampling, writing = write(path, args.hosts, args.gpus, args.seconds, args.changes)
        size = path.stat().st_size
        host_hours = args.hosts * args.seconds / 3600
        opened, times = asyncio.run(seeks(path, args.seeks))
    print(f"{args.hosts} hosts x {args.gpus} GPUs, {args.seconds} s at 1 s: {size / 1e6:.1f} MB")
    print(f"  {size / 1e6 / host_hours:.3f} MB per host-hour ({size / (args.hosts * args.seconds):.0f} bytes a sample)")
    print(f"  sampling {sampling:.0f} s CPU; compressing and writing {writing:.1f} s CPU "
          f"({100 * writing / args.seconds:.1f} % of one core in real time)")  # fmt: skip
    print(f"  open (CRC of every chunk) {opened * 1000:.0f} ms; seek (rebuild from keyframe) "
          f"p50 {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
