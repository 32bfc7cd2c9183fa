"""Simulated hosts for the demo: in-process agents, their frames as lines.

Each host is the agent's real ``Sampler`` on a ``SimNvml`` with supplied
process facts (a real process per simulated job would not scale to a
thousand hosts). The frames are serialised to JSON lines and parsed by the
same code as every other source. Sampling runs on one background thread so
that the UI's event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

from gputui.agent.sampler import Sampler
from gputui.sim.nvml import SimNvml
from gputui.transport.base import LinkError

FLEET = "fleet"  # a mix: mostly healthy, some mixed, one host in eight in trouble


def scenario_for(scenario: str, host_no: int) -> str:
    if scenario != FLEET:
        return scenario
    if host_no % 8 == 2:
        return "incident"
    if host_no % 4 == 1:
        return "mixed"
    return "healthy"


def host_names(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"gpu-{i + 1:0{width}d}" for i in range(count)]


class DemoFleet:
    """Drives every simulated host's agent from one thread."""

    def __init__(self, hosts: int, gpus: int | None, scenario: str, seed: int, interval: float) -> None:
        self.names = host_names(hosts)
        self.interval = interval
        self.samplers: list[Sampler] = []
        for i, name in enumerate(self.names):
            sim = SimNvml(scenario_for(scenario, i), seed=seed * 1009 + i, gpus=gpus, processes="synthetic", host_no=i)
            self.samplers.append(Sampler(sim, host=name, source=f"sim:{sim.scenario.name}", describe=sim.describe_process))
        self.queues: dict[str, asyncio.Queue[bytes | None]] = {}
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def links(self) -> list[DemoLink]:
        return [DemoLink(name, self) for name in self.names]

    def _queue(self, name: str) -> asyncio.Queue[bytes | None]:
        if name not in self.queues:
            self.queues[name] = asyncio.Queue(maxsize=16)
        return self.queues[name]

    def _start(self) -> None:
        if self.thread is None:
            self.loop = asyncio.get_running_loop()
            for name in self.names:
                self._queue(name)
            self.thread = threading.Thread(target=self._run, name="gputui-demo", daemon=True)
            self.thread.start()

    def _deliver(self, name: str, line: bytes) -> None:
        queue = self.queues[name]
        if queue.full():  # a slow reader loses old frames, never blocks the feed
            queue.get_nowait()
        queue.put_nowait(line)

    def _run(self) -> None:
        assert self.loop is not None
        loop = self.loop
        try:
            for s in self.samplers:
                loop.call_soon_threadsafe(self._deliver, s.host, _line(s.hello(self.interval)))
            while not self.stop.is_set():
                for s in self.samplers:
                    loop.call_soon_threadsafe(self._deliver, s.host, _line(s.sample()))
                self.stop.wait(self.interval)
        except RuntimeError:
            return  # the loop closed under us: the app is exiting

    def close(self) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5.0)
        for s in self.samplers:
            s.caller.nvml.close()


class DemoLink:
    def __init__(self, name: str, fleet: DemoFleet) -> None:
        self.name = name
        self.fleet = fleet

    async def lines(self) -> AsyncIterator[bytes]:
        self.fleet._start()
        queue = self.fleet._queue(self.name)
        while True:
            line = await queue.get()
            if line is None:
                raise LinkError("demo stopped")
            yield line

    async def send(self, command: dict[str, object]) -> None:
        raise LinkError("simulated demo hosts take no commands yet")

    async def close(self) -> None:
        self.fleet.close()


def _line(frame: dict[str, object]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode()
