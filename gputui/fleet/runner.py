"""Connects links to the store: one task per host, failures kept per host."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from gputui.fleet.store import FleetStore
from gputui.frames import FrameError, parse_frame
from gputui.transport.base import Link, LinkError


async def follow(link: Link, store: FleetStore) -> None:
    """Read one host until its link ends; a bad frame marks only this host."""
    store.mark_connecting(link.name)
    try:
        async for line in link.lines():
            try:
                frame = parse_frame(line)
            except FrameError as exc:
                store.mark_bad_frame(link.name, str(exc))
                continue
            store.apply(link.name, frame)
        store.mark_down(link.name, "connection closed")
    except LinkError as exc:
        store.mark_down(link.name, str(exc))
    except OSError as exc:
        store.mark_down(link.name, f"I/O error: {exc}")


class FleetRunner:
    def __init__(self, links: Iterable[Link], store: FleetStore) -> None:
        self.links = list(links)
        self.store = store
        self.tasks: list[asyncio.Task[None]] = []
        for link in self.links:
            store.add_host(link.name)

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(follow(link, self.store)) for link in self.links]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(link.close() for link in self.links), return_exceptions=True)
