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
from collections import deque
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from gputui.child_process import end_child
from gputui.protocol import KEYFRAME_EVERY
from gputui.sources.base import AgentLines, FleetPart, Source
from gputui.sources.demo_feed import FLEET, host_names, scenario_for
from gputui.transport.base import LinkError
from gputui.transport.lines import split_lines

if TYPE_CHECKING:
    from gputui.config import Config
    from gputui.sources.fleet import DemoSpec

__all__ = ["FLEET", "DemoFleet", "DemoLink", "fleet_sources", "host_names", "scenario_for"]
HOSTS_PER_FEED = 512
QUEUE_FRAMES = 8
# Frames handed to their hosts' tasks per turn of the event loop, all feeds together (DemoFleet._read):
# about 3 ms of frames a turn (16 made 6, and a wakeup waits two to three turns: health/engine.py).
LINES_PER_TURN = 8
_DELTA = b'{"type":"delta"'  # how demo_feed writes a delta: ``type`` first, no spaces


class DemoFleet:
    """Starts the feeds on first use, restarts one that died, and is closed
    once by its owner (the app or the snapshot), not by each host's link."""

    # Samples as changes, a keyframe every this many (0: whole samples, as agents sent
    # them before ``--changes``; bench/ui_scale.py --whole-samples compares the two).
    keyframe_every = KEYFRAME_EVERY
    # Hosts each feed samples, the rest sent copies of their frames (0: every host sampled; a
    # benchmark on a machine too small to sample thousands of hosts a second sets it: demo_feed.py).
    sampled_per_feed = 0

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
        feeds = -(-hosts // HOSTS_PER_FEED)
        self.lines_per_turn = max(1, LINES_PER_TURN // feeds)  # each feed's reader's share of a turn
        self.index = {name: i for i, name in enumerate(self.names)}
        self.starting: dict[int, asyncio.Lock] = {}
        self.args = (hosts, gpus, scenario, seed, interval)
        self.mailboxes: dict[str, Mailbox] = {}
        self.feeds: dict[int, asyncio.subprocess.Process] = {}  # by the first host it feeds
        self.readers: dict[int, asyncio.Task[None]] = {}
        self.closed = False

    def sources(self) -> list[Source]:
        return [AgentLines(DemoLink(name, self)) for name in self.names]

    def mailbox(self, name: str) -> Mailbox:
        if name not in self.mailboxes:
            self.mailboxes[name] = Mailbox()
        return self.mailboxes[name]

    async def ensure_feed(self, name: str) -> None:
        """Start (or restart) the feed that samples ``name``."""
        if self.closed:
            raise LinkError("the demo is closing")
        first = self.index[name] // HOSTS_PER_FEED * HOSTS_PER_FEED
        # Every host of a feed asks at once: the first starts it, the rest wait for that.
        async with self.starting.setdefault(first, asyncio.Lock()):
            feed = self.feeds.get(first)
            if feed is None or feed.returncode is not None:
                await self._start_feed(first)

    async def _start_feed(self, first: int) -> None:
        hosts, gpus, scenario, seed, interval = self.args
        argv = [sys.executable, "-m", "gputui.sources.demo_feed", "--total", str(hosts), "--first", str(first),
                "--count", str(HOSTS_PER_FEED), "--scenario", scenario, "--seed", str(seed),
                "--interval", str(interval), "--keyframe-every", str(self.keyframe_every)]  # fmt: skip
        if gpus is not None:
            argv += ["--gpus", str(gpus)]
        if self.sampled_per_feed > 0:
            argv += ["--sampled", str(self.sampled_per_feed)]
        feed = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        if self.closed:  # closed while it started: close() did not see it, so it ends here
            await end_child(feed)
            raise LinkError("the demo is closing")
        self.feeds[first] = feed
        self.readers[first] = asyncio.ensure_future(self._read(feed, self.names[first : first + HOSTS_PER_FEED]))

    async def _read(self, feed: asyncio.subprocess.Process, names: list[str]) -> None:
        """Hand each line to its host, giving the event loop a turn every ``LINES_PER_TURN``.

        A feed writes all its hosts' frames at once, and a read returns hundreds of them without
        waiting: each line handed on wakes its host's task, and every task woken runs in the
        loop's next turn, one after the other (about a third of a millisecond each). A read's worth
        of them, a hundred and more, held the loop for tens of milliseconds, keystrokes and redraws
        waiting behind them; a turn every ``LINES_PER_TURN`` lines keeps each turn short. Every
        feed's reader runs in the same turn, so each takes its share of them: at 4,096 hosts, eight
        feeds of 16 lines each woke 128 hosts' tasks, 45 ms of one turn on a slow machine."""
        assert feed.stdout is not None
        handed, share = 0, self.lines_per_turn
        async for line in split_lines(feed.stdout.read):
            host, sep, frame = line.partition(b"\t")
            if sep:
                self._put(host.decode(), frame)
                handed += 1
                if handed % share == 0:
                    await asyncio.sleep(0)
        await feed.wait()
        for name in names:  # this feed ended: the hosts it fed are down, the others are not
            self._put(name, None)

    def _put(self, name: str, item: bytes | None) -> None:
        self.mailbox(name).put(item)

    async def close(self) -> None:
        """End every feed, all at once and each in bounded time (gputui/child_process.py says why
        a plain terminate-and-wait hung here): their readers stop first, so that nothing but the
        drain in ``end_child`` reads the pipes, then each feed's stdin closes (it stops by itself)."""
        self.closed = True
        feeds, self.feeds = list(self.feeds.values()), {}
        readers, self.readers = list(self.readers.values()), {}
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for feed in feeds:
            if feed.stdin is not None:
                feed.stdin.close()
        await asyncio.gather(*(end_child(feed) for feed in feeds))


class Mailbox:
    """One host's lines on their way to its task: the newest ``QUEUE_FRAMES`` (a slow reader loses
    old frames, never stalls the feed), read by that one task.

    Not an ``asyncio.Queue``: a task waiting on one holds a ``get`` coroutine as well as the future
    it waits for. Every demo host's task waits about a second between frames, long enough for its
    waiting objects to be among those each middle collection walks, and at 4,096 hosts those were
    most of that walk."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: deque[bytes | None] = deque(maxlen=QUEUE_FRAMES)
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: bytes | None) -> None:
        self.items.append(item)  # the oldest dropped when full
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():  # done: its reader was cancelled
            waiter.set_result(None)

    def qsize(self) -> int:
        return len(self.items)

    def get_nowait(self) -> bytes | None:
        return self.items.popleft()

    def arrival(self) -> asyncio.Future[None]:
        """Done when the next line is put."""
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter


class DemoLink:
    via: tuple[str, ...] = ()  # in-process: no jump host

    def __init__(self, name: str, fleet: DemoFleet) -> None:
        self.name = name
        self.fleet = fleet

    async def lines(self) -> AsyncGenerator[bytes, None]:
        """The host's lines from its feed. A new connection starts at a whole frame: the
        feed does not start again for it (as an agent would), so the changes queued
        before the next keyframe are passed over, as a reader that joined late would."""
        await self.fleet.ensure_feed(self.name)
        box = self.fleet.mailbox(self.name)
        whole = False
        while True:
            if not box.items:
                await box.arrival()
            else:  # a backlog (the dashboard fell behind): still one frame a turn (split_lines says why)
                await asyncio.sleep(0)
            line = box.get_nowait()
            if line is None:
                raise LinkError("the demo feed stopped")
            whole = whole or not line.startswith(_DELTA)
            if whole:
                yield line

    async def send(self, command: dict[str, object]) -> None:
        raise LinkError("simulated demo hosts take no commands yet")

    async def close(self) -> None:
        return None  # the feed serves other hosts too: its owner closes the fleet


def fleet_sources(settings: DemoSpec, config: Config) -> FleetPart:
    """The demo as a ``fleet`` kind (gputui/registry.py): ValueError for a bad argument."""
    feeds = DemoFleet(settings.hosts, settings.gpus, settings.scenario, settings.seed, settings.interval)
    return FleetPart(feeds.sources(), feeds.close)
