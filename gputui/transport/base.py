"""A connection that carries the agent's lines, one host per link; gputui/sources turns its lines into frames."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class Link(Protocol):
    """One host's connection. ``lines()`` yields raw NDJSON lines until the
    source ends; it raises :class:`LinkError` when the connection fails."""

    name: str

    @property
    def via(self) -> tuple[str, ...]:
        """The jump hosts the last connection went through, first hop first (none: direct)."""
        ...

    def lines(self) -> AsyncIterator[bytes]: ...

    async def send(self, command: dict[str, object]) -> None: ...

    async def close(self) -> None: ...


class LinkError(Exception):
    """The connection to a host failed; the message says why, for the operator.

    ``hop`` names the jump host whose own connection failed, when that is
    why: the health rules then tell one bastion down from many hosts down."""

    def __init__(self, message: str, hop: str | None = None) -> None:
        super().__init__(message)
        self.hop = hop
