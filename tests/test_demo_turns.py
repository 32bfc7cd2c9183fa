"""A demo feed's burst of frames does not hold the event loop, and nothing waits per line.

A feed writes all its hosts' frames at once, and one read returns hundreds of
them: handed on together, they held the loop for one long turn, keystrokes
and redraws waiting behind them. Each line is now handed to its host's
``take`` in the feed reader's own turn (no task waits for it), a few a turn.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from gputui.sources.demo import HOSTS_PER_FEED, LINES_PER_TURN, QUEUE_FRAMES, DemoFleet, Inbox
from gputui.transport.base import LinkError

HOSTS = 300


async def most_handed_in_one_turn(handed: Callable[[], int], total: int) -> tuple[int, int]:
    """Watch ``handed()`` between this task's turns of the loop, as a keystroke or a redraw sees
    it, until it reaches ``total``: the most handed on in one turn, and the count at the end."""
    counts = [handed()]
    while counts[-1] < total:
        await asyncio.sleep(0)
        counts.append(handed())
    return max(b - a for a, b in itertools.pairwise(counts)), counts[-1]


def follow_all(fleet: DemoFleet, taken: dict[str, list[bytes]]) -> list[asyncio.Task[None]]:
    """Every host followed, as the dashboard's runner does: its lines into ``taken``."""
    return [asyncio.ensure_future(fleet.inbox(name).follow(taken.setdefault(name, []).append)) for name in fleet.names]


async def test_a_burst_of_frames_is_handed_on_a_few_per_turn_of_the_loop(tmp_path: Path) -> None:
    fleet = DemoFleet(HOSTS, 8, "fleet", 0, 1.0)
    taken: dict[str, list[bytes]] = {}
    followers = follow_all(fleet, taken)
    await asyncio.sleep(0)  # each follower now waits for its lines
    burst = tmp_path / "burst"  # one frame per host, as a feed writes each second, read in one go
    burst.write_bytes(b"".join(f'{name}\t{{"type":"sample","n":{i}}}\n'.encode() for i, name in enumerate(fleet.names)))
    feed = await asyncio.create_subprocess_exec("cat", str(burst), stdout=asyncio.subprocess.PIPE)
    reading = asyncio.ensure_future(fleet._read(feed, fleet.names))

    most, handed = await most_handed_in_one_turn(lambda: sum(map(len, taken.values())), HOSTS)
    await reading

    assert most <= LINES_PER_TURN, f"{most} frames handed on in one turn of the loop"
    assert handed == HOSTS
    assert taken[fleet.names[0]] == [b'{"type":"sample","n":0}']  # each host gets its own frame, whole
    assert taken[fleet.names[-1]] == [f'{{"type":"sample","n":{HOSTS - 1}}}'.encode()]
    ends = await asyncio.gather(*followers, return_exceptions=True)  # the feed ended: every host is told
    assert all(isinstance(end, LinkError) and "feed stopped" in str(end) for end in ends)


async def test_the_feeds_of_a_large_fleet_hand_on_a_few_per_turn_all_together(tmp_path: Path) -> None:
    """Each feed's reader runs in the same turn of the loop: at 2,048 hosts, four feeds' bursts
    together are handed on no faster than one feed's."""
    fleet = DemoFleet(4 * HOSTS_PER_FEED, 8, "fleet", 0, 1.0)
    taken: dict[str, list[bytes]] = {}
    followers = follow_all(fleet, taken)
    await asyncio.sleep(0)
    readers = []
    for first in range(0, len(fleet.names), HOSTS_PER_FEED):
        names = fleet.names[first : first + HOSTS_PER_FEED]
        burst = tmp_path / f"burst-{first}"
        burst.write_bytes(b"".join(f'{name}\t{{"type":"sample"}}\n'.encode() for name in names))
        feed = await asyncio.create_subprocess_exec("cat", str(burst), stdout=asyncio.subprocess.PIPE)
        readers.append(asyncio.ensure_future(fleet._read(feed, names)))

    most, _ = await most_handed_in_one_turn(lambda: sum(map(len, taken.values())), len(fleet.names))
    await asyncio.gather(*readers)
    await asyncio.gather(*followers, return_exceptions=True)

    assert most <= LINES_PER_TURN, f"{most} frames handed on in one turn of the loop"
    assert all(taken[name] == [b'{"type":"sample"}'] for name in fleet.names)


async def test_a_host_not_followed_keeps_its_newest_frames_and_gets_them_first_a_turn_each() -> None:
    """Lines that come while no one follows a host (before it connects, between a reset and its
    next try) are kept, the newest few, never holding up the feed, and handed on first."""
    inbox = Inbox()
    for n in range(QUEUE_FRAMES + 3):
        inbox.put(f'{{"type":"sample","n":{n}}}'.encode())
    taken: list[bytes] = []
    following = asyncio.ensure_future(inbox.follow(taken.append))
    most, _ = await most_handed_in_one_turn(lambda: len(taken), QUEUE_FRAMES)
    assert most == 1, f"{most} kept frames handed on in one turn of the loop"
    assert taken == [f'{{"type":"sample","n":{n}}}'.encode() for n in range(3, QUEUE_FRAMES + 3)]

    await asyncio.sleep(0)  # the backlog done, it waits for lines as they come
    inbox.put(b'{"type":"sample","n":"next"}')
    assert taken[-1] == b'{"type":"sample","n":"next"}'  # handed on at once, in the feed's turn
    inbox.put(None)  # the feed ended
    with pytest.raises(LinkError, match="feed stopped"):
        await following


async def test_a_host_whose_take_fails_ends_alone_and_the_feed_keeps_its_lines_for_the_next_try() -> None:
    fleet = DemoFleet(2, 8, "fleet", 0, 1.0)
    bad, good = fleet.names
    taken: list[bytes] = []

    def take_bad(line: bytes) -> None:
        raise ValueError(f"cannot read {line!r}")

    failing = asyncio.ensure_future(fleet.inbox(bad).follow(take_bad))
    other = asyncio.ensure_future(fleet.inbox(good).follow(taken.append))
    await asyncio.sleep(0)
    fleet._put(bad, b'{"type":"sample"}')  # as the feed's reader does: what the host's take raises is its own
    fleet._put(good, b'{"type":"sample"}')
    with pytest.raises(ValueError, match="cannot read"):
        await failing
    assert taken == [b'{"type":"sample"}'] and not other.done()

    fleet._put(bad, b'{"type":"delta","seq":7}')  # no one follows it now: kept for its next try
    fleet._put(bad, b'{"type":"sample","seq":8}')
    again: list[bytes] = []
    retry = asyncio.ensure_future(fleet.inbox(bad).follow(again.append))
    await most_handed_in_one_turn(lambda: len(again), 1)
    assert again == [b'{"type":"sample","seq":8}']  # a new connection starts at a whole frame
    retry.cancel()
    other.cancel()
    await asyncio.gather(retry, other, return_exceptions=True)
    fleet._put(bad, b"after")  # cancelled (the dashboard quit): the feed goes on, the line is kept
    assert list(fleet.inbox(bad).backlog) == [b"after"]
