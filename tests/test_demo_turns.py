"""A demo feed's burst of frames does not hold the event loop.

A feed writes all its hosts' frames at once, and one read returns hundreds of
them: handed on together, they woke hundreds of hosts' tasks for one turn of
the loop, and keystrokes and redraws waited behind all of them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

from gputui.sources.demo import HOSTS_PER_FEED, LINES_PER_TURN, QUEUE_FRAMES, DemoFleet

HOSTS = 300


async def most_handed_in_one_turn(handed: Callable[[], int], total: int) -> tuple[int, int]:
    """Watch ``handed()`` between this task's turns of the loop, as a keystroke or a redraw sees
    it, until it reaches ``total``: the most handed on in one turn, and the count at the end."""
    counts = [handed()]
    while counts[-1] < total:
        await asyncio.sleep(0)
        counts.append(handed())
    return max(b - a for a, b in itertools.pairwise(counts)), counts[-1]


async def test_a_burst_of_frames_is_handed_on_a_few_dozen_per_turn_of_the_loop(tmp_path: Path) -> None:
    fleet = DemoFleet(HOSTS, 8, "fleet", 0, 1.0)
    burst = tmp_path / "burst"  # one frame per host, as a feed writes each second, read in one go
    burst.write_bytes(b"".join(f'{name}\t{{"type":"sample","n":{i}}}\n'.encode() for i, name in enumerate(fleet.names)))
    feed = await asyncio.create_subprocess_exec("cat", str(burst), stdout=asyncio.subprocess.PIPE)
    reading = asyncio.ensure_future(fleet._read(feed, fleet.names))

    def queued() -> int:  # past HOSTS: the feed's end, said to every host
        return min(sum(box.qsize() for box in fleet.mailboxes.values()), HOSTS)

    most, handed = await most_handed_in_one_turn(queued, HOSTS)
    await reading

    assert most <= LINES_PER_TURN, f"{most} frames handed on in one turn of the loop"
    assert handed == HOSTS
    first = fleet.mailbox(fleet.names[0]).get_nowait()
    assert first == b'{"type":"sample","n":0}'  # each host gets its own frame, whole
    assert fleet.mailbox(fleet.names[-1]).get_nowait() == f'{{"type":"sample","n":{HOSTS - 1}}}'.encode()


async def test_the_feeds_of_a_large_fleet_hand_on_a_few_dozen_per_turn_all_together(tmp_path: Path) -> None:
    """Each feed's reader runs in the same turn of the loop: at 2,048 hosts, four feeds' bursts
    together are handed on no faster than one feed's."""
    fleet = DemoFleet(4 * HOSTS_PER_FEED, 8, "fleet", 0, 1.0)
    handed: list[bytes] = []  # frames, not the end of a feed (said to each of its hosts at once)
    put = fleet._put

    def counted_put(name: str, item: bytes | None) -> None:
        if item is not None:
            handed.append(item)
        put(name, item)

    fleet._put = counted_put  # type: ignore[method-assign]
    readers = []
    for first in range(0, len(fleet.names), HOSTS_PER_FEED):
        names = fleet.names[first : first + HOSTS_PER_FEED]
        burst = tmp_path / f"burst-{first}"
        burst.write_bytes(b"".join(f'{name}\t{{"type":"sample"}}\n'.encode() for name in names))
        feed = await asyncio.create_subprocess_exec("cat", str(burst), stdout=asyncio.subprocess.PIPE)
        readers.append(asyncio.ensure_future(fleet._read(feed, names)))

    most, _ = await most_handed_in_one_turn(lambda: len(handed), len(fleet.names))  # from some, while the others started
    await asyncio.gather(*readers)

    assert most <= LINES_PER_TURN, f"{most} frames handed on in one turn of the loop"
    assert all(fleet.mailbox(name).get_nowait() == b'{"type":"sample"}' for name in fleet.names)


async def test_a_host_that_falls_behind_keeps_its_newest_frames_and_never_holds_up_its_feed() -> None:
    fleet = DemoFleet(2, 8, "fleet", 0, 1.0)
    name = fleet.names[0]
    for n in range(QUEUE_FRAMES + 3):  # the host's task is busy: none is read meanwhile
        fleet._put(name, f"frame {n}".encode())
    box = fleet.mailbox(name)
    kept = [box.get_nowait() for _ in range(box.qsize())]
    assert kept == [f"frame {n}".encode() for n in range(3, QUEUE_FRAMES + 3)]

    arrival = box.arrival()  # the host's task waits for its next line
    assert not arrival.done()
    fleet._put(name, b"next")
    assert arrival.done() and box.get_nowait() == b"next"

    box.arrival().cancel()  # a task cancelled while it waited (the dashboard quit)
    fleet._put(name, b"after")  # the feed goes on handing lines on regardless
    assert box.qsize() == 1
