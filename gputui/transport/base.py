"""A connection that carries the agent's lines, one host per link; gputui/sources turns its lines into frames."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class PushLink(Protocol):
    """A link whose lines a reader shared by many hosts hands on as they come (the demo's feeds):
    ``push_lines(take)`` calls ``take`` with each line, in the reader's turn of the event loop,
    and returns only when the link ends, raising as ``lines()`` would, or with what ``take``
    raised. No task waits for each line: at 4,096 hosts, the objects a task needs to wait on its
    next line (the future, its iterator, its wakeup, an ``asend`` per generator it goes through)
    were most of what every middle collection walked, and waking it a share of the CPU."""

    name: str

    @property
    def via(self) -> tuple[str, ...]: ...

    async def push_lines(self, take: Callable[[bytes], None]) -> None: ...

    async def send(self, command: dict[str, object]) -> None: ...

    async def close(self) -> None: ...


class LinkError(Exception):
    """The connection to a host failed; the message says why, for the operator.

    ``hop`` names the jump host whose own connection failed, when that is
    why: the health rules then tell one bastion down from many hosts down."""

    def __init__(self, message: str, hop: str | None = None) -> None:
        super().__init__(message)
        self.hop = hop
