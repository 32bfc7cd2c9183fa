"""Recordings for the tests: a long one from simulated hosts written in a
fraction of the time, one recorded from a live demo fleet, and damage done
to a recording's chunks."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from gputui.agent.changes import ChangeEncoder
from gputui.agent.sampler import Sampler
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore
from gputui.record import format as fmt
from gputui.record.reader import Recording
from gputui.record.recorder import Recorder
from gputui.record.writer import ChunkBuilder, RecordingFile
from gputui.sim.nvml import SimNvml
from gputui.sources.demo import DemoFleet
from gputui.sources.demo_feed import host_names, scenario_for

EPOCH = 1_795_000_000.0


def write_sim_recording(
    path: Path, hosts: int = 4, seconds: int = 120, chunk_seconds: float = 20.0, keyframe_every: int = 0
) -> None:
    """``seconds`` of a simulated fleet at 1 s, written as a recorder writes, in a fraction of the time;
    with ``keyframe_every``, as agents that send changes (``--changes``) would send them."""
    now = [0.0]
    builder = ChunkBuilder(chunk_seconds)
    fleet = []
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for("fleet", i), seed=i, gpus=4, processes="synthetic", host_no=i, clock=lambda: now[0])
        fleet.append(
            (name, Sampler(sim, host=name, describe=sim.describe_process, clock=lambda: now[0], wall=lambda: EPOCH + now[0]))
        )
        builder.add_host(name, ("rack-a",), None)
    encoders = [ChangeEncoder(keyframe_every, phase=j) for j in range(hosts)] if keyframe_every else []
    out = RecordingFile(path, "simulated", builder.hosts)
    for step in range(seconds + 1):
        for j, (name, sampler) in enumerate(fleet):
            frame = sampler.hello(1.0) if step == 0 else sampler.sample()
            if encoders:
                frame = encoders[j].hello(frame) if step == 0 else encoders[j].encode(frame)
            t = round(EPOCH + now[0] + 0.01 * (j + 1), 6)
            if builder.due(t) and (chunk := builder.cut()) is not None:
                out.write(chunk)
            builder.frame(name, t, json.dumps(frame, separators=(",", ":")).encode())
        now[0] += 1.0
    if (chunk := builder.cut()) is not None:
        out.write(chunk)
    out.close()


class Seen:
    """A second tap on the runner: what the store was handed, with the recorder's own timestamps."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.lines: list[tuple[str, float, bytes]] = []
        self.ends: list[tuple[str, float, str]] = []

    def clock(self) -> float:
        self.stamps.append(time.time())
        return self.stamps[-1]

    def line(self, host: str, data: bytes) -> None:
        self.lines.append((host, round(self.stamps[-1], 6), data))

    def ended(self, host: str, error: str) -> None:
        self.ends.append((host, round(self.stamps[-1], 6), error))


async def until(store: FleetStore, predicate: object, what: str, timeout: float = 20.0) -> None:
    """Wait on the store's change notifications until ``predicate()`` holds."""
    assert callable(predicate)
    changed = asyncio.Event()
    store.listeners.append(changed.set)
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    finally:
        store.listeners.remove(changed.set)


def seqs(store: FleetStore, at_least: int) -> bool:
    return all(r.sample is not None and r.sample.seq >= at_least for r in store.hosts.values())


async def record_demo(
    path: Path, samples: int = 8, hosts: int = 3, chunk_seconds: float = 20.0, scenario: str = "fleet", gpus: int = 2
) -> tuple[FleetStore, Seen]:
    """Record a live demo fleet until every host sent ``samples`` samples; returns the live store."""
    fleet = DemoFleet(hosts, gpus, scenario, 7, 0.1)
    store = FleetStore()
    runner = FleetRunner(fleet.sources(), store)
    seen = Seen()
    recorder = Recorder.start(runner, path, "test fleet", clock=seen.clock, chunk_seconds=chunk_seconds)
    runner.taps.append(seen)
    runner.start()
    try:
        await until(store, lambda: seqs(store, samples), f"{samples} samples from every host", timeout=40)
    finally:
        await runner.stop()
        await recorder.close()
        await fleet.close()
    return store, seen


def corrupt(path: Path, offsets: list[int]) -> None:
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset + fmt.HEADER_SIZE + 20] ^= 0xFF  # inside the chunk's compressed payload
    path.write_bytes(bytes(data))


def damage_last_chunk(path: Path) -> None:
    rec = Recording.open(path)
    last = rec.chunks[-1].offset
    rec.close()
    corrupt(path, [last])
