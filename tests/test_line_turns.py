"""A host whose frames piled up does not hold the event loop while it works through them.

A host sends a frame a second and each read returns one; a dashboard that fell
behind (thousands of hosts on a small machine) finds several waiting for each
host, and each host's task went through all of its backlog in one turn of the
loop: at 4,096 demo hosts, a quarter of a second with no keystroke or redraw.
Now each frame of a backlog waits for a turn of its own, over SSH and from the
local agent (the demo's feeds hand their hosts' lines on a few a turn, and a
backlog one a turn: tests/test_demo_turns.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from gputui.transport.lines import split_lines


async def most_in_one_turn(lines: AsyncIterator[bytes], wanted: Callable[[list[bytes]], bool]) -> tuple[int, list[bytes]]:
    """Read ``lines`` in a task of their own until ``wanted`` says enough: the most lines it read
    between two turns of another task (a keystroke, a redraw), and the lines."""
    got: list[bytes] = []

    async def consume() -> None:
        while not wanted(got):
            got.append(await anext(lines))

    reading = asyncio.ensure_future(consume())
    counts = [0]
    while not reading.done():
        await asyncio.sleep(0)
        counts.append(len(got))
    await reading
    return max(b - a for a, b in itertools.pairwise(counts)), got


async def test_lines_read_together_are_handed_on_one_per_turn(tmp_path: Path) -> None:
    frames = [f'{{"type":"sample","seq":{i}}}'.encode() for i in range(20)]
    backlog = tmp_path / "backlog"
    backlog.write_bytes(b"".join(line + b"\n" for line in frames))  # twenty frames waiting, read in one go
    process = await asyncio.create_subprocess_exec("cat", str(backlog), stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    lines = split_lines(process.stdout.read, one_per_turn=True)
    most, got = await most_in_one_turn(lines, lambda got: len(got) == len(frames))
    await process.wait()
    assert got == frames  # every frame, whole and in order
    assert most == 1, f"{most} frames in one turn of the event loop"
