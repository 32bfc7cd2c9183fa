"""Turns config host entries into links."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gputui.config import Config, Host
from gputui.transport.base import Link, LinkError
from gputui.transport.local import LocalLink, agent_argv


class UnsupportedLink:
    """A host this version cannot reach; it shows as down, with the reason."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    async def lines(self) -> AsyncIterator[bytes]:
        raise LinkError(self.reason)
        yield b""  # pragma: no cover - makes this an async generator

    async def send(self, command: dict[str, object]) -> None:
        raise LinkError(self.reason)

    async def close(self) -> None:
        return None


def link_for(host: Host, interval: float) -> Link:
    if host.transport == "local":
        argv = agent_argv(interval, sim=host.sim, seed=host.seed, gpus=host.gpus, host_name=host.name if host.sim else None)
        return LocalLink(host.name, argv)
    return UnsupportedLink(host.name, 'the SSH transport is not in this version yet; use transport = "local"')


def links_for(config: Config) -> list[Link]:
    return [link_for(h, config.interval) for h in config.hosts]
