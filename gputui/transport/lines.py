"""Splits a byte stream into lines with a hard cap on a line's size.

A host that sends a 100 MB line must cost the dashboard at most the cap in
memory before it is cut off, so lines are assembled here from bounded reads
rather than with an unbounded ``readline``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from gputui.protocol import MAX_FRAME_BYTES
from gputui.transport.base import LinkError

READ_CHUNK = 64 * 1024
TYPE_FIELD = re.compile(rb'^\{\s*"type"\s*:\s*"([a-z_]{1,20})"')


async def split_lines(
    read: Callable[[int], Awaitable[bytes]], limit: int = MAX_FRAME_BYTES, one_per_turn: bool = False
) -> AsyncIterator[bytes]:
    """Yield complete lines from ``read(n)`` until it returns b''.

    ``one_per_turn`` (a host's frames): the event loop gets a turn before each line after the
    first of a read. A host sends a frame a second and a read returns one; but a dashboard that
    fell behind finds several waiting, and its host's task went through all of them in one turn
    (thousands of hosts, each with a backlog of eight: a quarter of a second without a keystroke
    or a redraw). Between reads, awaiting the next gives the turn already."""
    buf = bytearray()
    while True:
        chunk = await read(READ_CHUNK)
        if not chunk:
            if buf:
                yield bytes(buf)
            return
        buf += chunk
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            if start and one_per_turn:
                await asyncio.sleep(0)
            yield bytes(buf[start:end])
            start = end + 1
        del buf[:start]
        if len(buf) > limit:
            raise LinkError(oversized_line(bytes(buf[:200]), limit))


def oversized_line(head: bytes, limit: int) -> str:
    """What a line over the cap was, as far as its start tells: the frame's
    type is the operator's first clue (a sample: the agent's data; none: not
    the agent talking)."""
    found = TYPE_FIELD.search(head)
    what = f"a '{found.group(1).decode()}' frame" if found else "a line"
    return f"host sent {what} of more than {limit // 1024} KiB (the frame limit): connection reset"
