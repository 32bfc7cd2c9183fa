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
from collections.abc import Callable
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
# Frames handed to their hosts per turn of the event loop, all feeds together (DemoFleet._read):
# about 3 ms of frames a turn (16 made 6, and a wakeup waits two to three turns: health/engine.py).
LINES_PER_TURN = 8
_DELTA = b'{"type":"delta"'  # how demo_feed writes a delta: ``type`` first, no spaces


MAX_HOSTS = 16_384  # 131,072 simulated GPUs: four times the largest fleet the benchmarks measure


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
        if hosts > MAX_HOSTS:  # 100,000 spawned 196 feeds and showed nothing for minutes
            raise ValueError(f"a demo has at most {MAX_HOSTS} hosts, not {hosts} (the dashboard is measured to 4,096)")
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
        self.inboxes: dict[str, Inbox] = {}
        self.feeds: dict[int, asyncio.subprocess.Process] = {}  # by the first host it feeds
        self.readers: dict[int, asyncio.Task[None]] = {}
        self.closed = False

    def sources(self) -> list[Source]:
        return [AgentLines(DemoLink(name, self)) for name in self.names]

    def inbox(self, name: str) -> Inbox:
        if name not in self.inboxes:
            self.inboxes[name] = Inbox()
        return self.inboxes[name]

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
        # A process group of its own: Ctrl-C in a terminal is for the command that started the feed,
        # which closes it (a feed still starting up would print a traceback); the feed ends when its
        # stdin does, whatever ends that process.
        feed = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, process_group=0
        )
        if self.closed:  # closed while it started: close() did not see it, so it ends here
            await end_child(feed)
            raise LinkError("the demo is closing")
        self.feeds[first] = feed
        self.readers[first] = asyncio.ensure_future(self._read(feed, self.names[first : first + HOSTS_PER_FEED]))

    async def _read(self, feed: asyncio.subprocess.Process, names: list[str]) -> None:
        """Hand each line to its host, giving the event loop a turn every ``LINES_PER_TURN``.

        A feed writes all its hosts' frames at once, and a read returns hundreds of them without
        waiting. Each line handed on is decoded and stored right here, in this task's turn (about
        a third of a millisecond each: ``Inbox``); a read's worth of them, a hundred and more,
        would hold the loop for tens of milliseconds, keystrokes and redraws waiting behind them,
        so a turn every ``LINES_PER_TURN`` lines keeps each turn short. Every feed's reader runs
        in the same turn, so each takes its share of them. A dashboard behind its hosts reads the
        pipe more slowly, and the feed, blocked on writing, samples less often: nothing is dropped
        on the way, so no host's changes break off before their next keyframe."""
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
        self.inbox(name).put(item)

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


class Inbox:
    """One host's lines from its feed: handed to the host's ``take`` as they come, in the feed
    reader's turn; kept, the newest ``QUEUE_FRAMES``, while no one follows the host (before it
    connects, between a reset and its next try), never holding up the feed.

    No task waits for each line (gputui/transport/base.py, ``PushLink``): a host's task waited
    a second for each, on a future through two async generators, and at 4,096 hosts those
    waiting objects (five a host) were four fifths of what each middle collection walked."""

    __slots__ = ("backlog", "ended", "take", "whole")

    def __init__(self) -> None:
        self.backlog: deque[bytes | None] = deque(maxlen=QUEUE_FRAMES)  # the oldest dropped when full
        self.take: Callable[[bytes], None] | None = None
        self.ended: asyncio.Future[None] | None = None
        self.whole = False

    def put(self, item: bytes | None) -> None:
        """A line from the feed (None: the feed ended). What ``take`` raises ends the host's
        following with it, and only that: the feed's reader goes on with its other hosts."""
        if self.take is None:
            self.backlog.append(item)
            return
        try:
            self._hand(item, self.take)
        except Exception as exc:  # the host's own task raises it, not the feed's reader
            self._end(exc)

    def _hand(self, item: bytes | None, take: Callable[[bytes], None]) -> None:
        if item is None:
            raise LinkError("the demo feed stopped")
        # A new connection starts at a whole frame: the feed does not start again for it (as an
        # agent would), so changes before the next keyframe are passed over, as a reader that
        # joined late would.
        if not self.whole:
            if item.startswith(_DELTA):
                return
            self.whole = True
        take(item)

    def _end(self, exc: Exception) -> None:
        ended, self.take, self.ended = self.ended, None, None
        if ended is not None and not ended.done():
            ended.set_exception(exc)

    async def follow(self, take: Callable[[bytes], None]) -> None:
        """Hand ``take`` each line until the feed ends or ``take`` raises: first what was kept
        while no one followed, a line a turn (a backlog must not hold the event loop), then each
        line as it comes."""
        self.whole = False
        while self.backlog:
            self._hand(self.backlog.popleft(), take)
            await asyncio.sleep(0)
        ended = self.ended = asyncio.get_running_loop().create_future()
        self.take = take
        try:
            await ended
        finally:
            if self.ended is ended:  # cancelled (the dashboard quit): lines are kept again
                self.take = self.ended = None


class DemoLink:
    via: tuple[str, ...] = ()  # in-process: no jump host

    def __init__(self, name: str, fleet: DemoFleet) -> None:
        self.name = name
        self.fleet = fleet

    async def push_lines(self, take: Callable[[bytes], None]) -> None:
        """The host's lines from its feed, each to ``take`` as the feed's reader hands it on."""
        await self.fleet.ensure_feed(self.name)
        await self.fleet.inbox(self.name).follow(take)

    async def send(self, command: dict[str, object]) -> None:
        raise LinkError("simulated demo hosts take no commands yet")

    async def close(self) -> None:
        return None  # the feed serves other hosts too: its owner closes the fleet


def fleet_sources(settings: DemoSpec, config: Config) -> FleetPart:
    """The demo as a ``fleet`` kind (gputui/registry.py): ValueError for a bad argument."""
    feeds = DemoFleet(settings.hosts, settings.gpus, settings.scenario, settings.seed, settings.interval)
    return FleetPart(feeds.sources(), feeds.close)
