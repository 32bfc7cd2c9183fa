"""A demo host's next lines, as its link pushes them (``DemoLink.push_lines``)."""

from __future__ import annotations

import pytest

from gputui.sources.demo import DemoLink


class Enough(Exception):
    """Raised by ``take`` once it has the lines wanted: the link's following ends with it."""


async def taken(link: DemoLink, count: int) -> list[bytes]:
    """The next ``count`` lines the link hands on, then its following ends (as a reset ends it)."""
    got: list[bytes] = []

    def take(line: bytes) -> None:
        got.append(line)
        if len(got) == count:
            raise Enough

    with pytest.raises(Enough):
        await link.push_lines(take)
    return got
