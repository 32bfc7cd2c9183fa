"""Simulated hosts for the demo, fed from child processes.

Each host is the agent's real ``Sampler`` on a ``SimNvml`` with supplied
process facts (a real process per simulated job would not scale to a
thousand hosts), run in ``demo_feed`` child processes — one per 512 hosts —
so that sampling a large demo fleet does not compete with the dashboard's
own event loop. Their frames are parsed by the same code as every other
source.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from gputui.transport.base import LinkError
from gputui.transport.demo_feed import FLEET, host_names, scenario_for
from gputui.transport.lines import split_lines

__all__ = ["FLEET", "DemoFleet", "DemoLink", "host_names", "scenario_for"]
HOSTS_PER_FEED = 512
QUEUE_FRAMES = 8


class DemoFleet:
    def __init__(self, hosts: int, gpus: int | None, scenario: str, seed: int, interval: float) -> None:
        if hosts < 1:
            raise ValueError("a demo needs at least one host")
        if gpus is not None and not 1 <= gpus <= 64:
            raise ValueError(f"gpus must be between 1 and 64, not {gpus}")
        if scenario != FLEET:
            from gputui.sim.scenarios import SCENARIOS

            if scenario not in SCENARIOS:
                raise ValueError(f"unknown scenario {scenario!r}")
        self.names = host_names(hosts)
        self.args = (hosts, gpus, scenario, seed, interval)
        self.queues: dict[str, asyncio.Queue[bytes | None]] = {}
        self.feeds: list[asyncio.subprocess.Process] = []
        self.readers: list[asyncio.Task[None]] = []
        self.started = False

    def links(self) -> list[DemoLink]:
        return [DemoLink(name, self) for name in self.names]

    def queue(self, name: str) -> asyncio.Queue[bytes | None]:
        if name not in self.queues:
            self.queues[name] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        return self.queues[name]

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        hosts, gpus, scenario, seed, interval = self.args
        for first in range(0, hosts, HOSTS_PER_FEED):
            argv = [sys.executable, "-m", "gputui.transport.demo_feed", "--total", str(hosts), "--first", str(first),
                    "--count", str(HOSTS_PER_FEED), "--scenario", scenario, "--seed", str(seed),
                    "--interval", str(interval)]  # fmt: skip
            if gpus is not None:
                argv += ["--gpus", str(gpus)]
            feed = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self.feeds.append(feed)
            self.readers.append(asyncio.ensure_future(self._read(feed)))

    async def _read(self, feed: asyncio.subprocess.Process) -> None:
        assert feed.stdout is not None
        async for line in split_lines(feed.stdout.read):
            name, sep, frame = line.partition(b"\t")
            if not sep:
                continue
            queue = self.queue(name.decode())
            if queue.full():  # a slow reader loses old frames, never stalls the feed
                queue.get_nowait()
            queue.put_nowait(frame)
        for queue in self.queues.values():  # the feed ended: every host it fed is down
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    async def close(self) -> None:
        """Idempotent: every link of the fleet calls it."""
        feeds, self.feeds = self.feeds, []
        readers, self.readers = self.readers, []
        for task in readers:
            task.cancel()
        for feed in feeds:
            if feed.returncode is None:
                if feed.stdin is not None:
                    feed.stdin.close()
                feed.terminate()
                await feed.wait()


class DemoLink:
    def __init__(self, name: str, fleet: DemoFleet) -> None:
        self.name = name
        self.fleet = fleet

    async def lines(self) -> AsyncIterator[bytes]:
        await self.fleet.start()
        queue = self.fleet.queue(self.name)
        while True:
            line = await queue.get()
            if line is None:
                raise LinkError("the demo feed stopped")
            yield line

    async def send(self, command: dict[str, object]) -> None:
        raise LinkError("simulated demo hosts take no commands yet")

    async def close(self) -> None:
        await self.fleet.close()
