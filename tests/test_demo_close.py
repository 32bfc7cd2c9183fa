"""Closing a large demo fleet: every feed process ends and is reaped, in bounded time.

At 2,048 hosts and more, closing the demo hung: its feeds kept writing while
nobody read their pipes any more, and ``Process.wait()`` waits for the pipes'
end of file as well as for the exit (gputui/child_process.py).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gputui.fleet.runner import FleetRunner
from gputui.sources.demo import HOSTS_PER_FEED
from gputui.sources.fleet import DemoSpec, demo

FEED_MODULE = b"gputui.sources.demo_feed"
START_BOUND_S = 120.0  # four feeds starting 512 samplers each, on a shared 2-core machine
CLOSE_BOUND_S = 15.0  # SIGTERM's and SIGKILL's waits are 2 s each: this is a hang, not a slow close


def feed_pids() -> set[int]:
    """This process's children that run a demo feed, from /proc."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == os.getpid() and FEED_MODULE in cmdline:
            found.add(int(proc.name))
    return found


def still_listed(pids: set[int]) -> list[int]:
    """Those of ``pids`` that /proc still lists: alive, or exited and not reaped (a zombie)."""
    return sorted(pid for pid in pids if Path(f"/proc/{pid}").exists())


async def all_feeds_heard(runner: FleetRunner, names: list[str]) -> None:
    """Until the last host of every feed has sent a sample: each feed then writes without pause."""
    store = runner.store
    heard = asyncio.Event()

    def check() -> None:
        if all(store.hosts[name].sample is not None for name in names):
            heard.set()

    store.listeners.append(check)
    try:
        async with asyncio.timeout(START_BOUND_S):
            await heard.wait()
    finally:
        store.listeners.remove(check)


async def test_closing_2048_demo_hosts_ends_and_reaps_every_feed() -> None:
    # A quarter-second interval keeps each feed writing all the time: its pipe is full when the
    # dashboard stops reading it, which is when a plain terminate-and-wait never returned.
    fleet = demo(DemoSpec(hosts=2048, gpus=8, scenario="fleet", seed=0, interval=0.25))
    runner = FleetRunner(fleet.sources, fleet.store)
    last_of_each_feed = [s.name for s in fleet.sources[HOSTS_PER_FEED - 1 :: HOSTS_PER_FEED]]
    runner.start()
    try:
        await all_feeds_heard(runner, last_of_each_feed)
        pids = feed_pids()
        assert len(pids) == 2048 // HOSTS_PER_FEED
    finally:
        await runner.stop()
    async with asyncio.timeout(CLOSE_BOUND_S):
        await fleet.close()
    left = still_listed(pids)
    assert left == [], f"feed processes still alive or unreaped after close: {left}"
    assert feed_pids() == set()
