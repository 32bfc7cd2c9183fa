"""What every source offers the fleet: parsed frames for one host.

Sources that speak the agent's line format (the agent over SSH or as a
child, the demo, nvidia-smi read into agent lines) hand each raw line to
``raw`` before it is parsed, so that a recorder keeps what the host sent,
a bad line included; a source that makes frames itself (a query API) may
hand their JSON instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gputui.frame_columns import GpuColumns
from gputui.frame_decoder import FrameDecoder
from gputui.frame_later import Later
from gputui.frames import Frame
from gputui.transport.base import Link, LinkError, PushLink

if TYPE_CHECKING:
    from gputui.config import Config, Host
    from gputui.transport.ssh import SshShared

__all__ = [
    "AgentLines",
    "FleetPart",
    "FleetSourceFactory",
    "HostSourceFactory",
    "LineTap",
    "LinkError",
    "Source",
    "SourceContext",
    "Take",
]


class LineTap(Protocol):
    """Sees each line a source received, before it is parsed (a recorder, gputui/record).
    ``listening``: whether anyone is; a source that makes its frames itself serialises
    them for the tap only then."""

    def __call__(self, line: bytes) -> None: ...

    @property
    def listening(self) -> bool: ...


class Take(Protocol):
    """Where a source hands each whole frame (the store's ``apply`` for its host). ``columns``: a
    sample's GPUs by field, where the source has them made already (a host's decoder does, at a
    fraction of the cost: gputui/frame_columns.py); the store makes them where it has none. A
    decoder hands a delta's sample on as a :class:`Later`, always with its columns: its GPUs are
    made when read, and only while it is the host's last (gputui/frame_later.py)."""

    def __call__(self, frame: Frame | Later, columns: GpuColumns | None = None, /) -> None: ...


class Source(Protocol):
    """One host's frames. ``follow()`` hands each to ``take`` until the source ends; it raises
    LinkError when the connection fails (the message is for the operator) and FrameError for a
    line that is not a frame (the host is then reset)."""

    name: str

    @property
    def via(self) -> tuple[str, ...]:
        """The jump hosts the last connection went through, first hop first (none: direct)."""
        ...

    async def follow(self, raw: LineTap, take: Take) -> None: ...

    async def send(self, command: dict[str, object]) -> None: ...

    async def close(self) -> None: ...


class AgentLines:
    """A source on a link that carries the agent's NDJSON lines."""

    def __init__(self, link: Link | PushLink) -> None:
        self.link = link
        self.name = link.name

    @property
    def via(self) -> tuple[str, ...]:
        return self.link.via

    async def follow(self, raw: LineTap, take: Take) -> None:
        """Whole frames: an agent that sends changes (``--changes``) is decoded here, per
        connection, so the store sees ordinary samples from either kind of agent (a delta's made
        when first read), each with its columns as the decoder made them. A link that pushes its lines (:class:`PushLink`) has
        them decoded and taken in its reader's turn."""
        decoder = FrameDecoder()
        link = self.link
        if isinstance(link, PushLink):

            def pushed(line: bytes) -> None:
                raw(line)
                take(decoder.frame_later(line), decoder.columns)

            await link.push_lines(pushed)
            return
        async for line in link.lines():
            raw(line)
            take(decoder.frame_later(line), decoder.columns)

    async def send(self, command: dict[str, object]) -> None:
        await self.link.send(command)

    async def close(self) -> None:
        await self.link.close()


class SourceContext:
    """What the sources of one dashboard share: the config and, made on first
    use, one SSH bundle and handshake cap for every SSH host."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._ssh: SshShared | None = None

    def ssh(self) -> SshShared:
        if self._ssh is None:
            from gputui.transport.ssh import SshShared

            self._ssh = SshShared.create(self.config.ssh, self.config.interval, self.config.actions.state_dir)
        return self._ssh


class HostSourceFactory(Protocol):
    """What a ``host`` kind's module exposes as ``host_source``: the source of one ``[[hosts]]`` entry."""

    def __call__(self, host: Host, context: SourceContext) -> Source: ...


@dataclass
class FleetPart:
    """What a ``fleet`` kind opens: sources for hosts it names itself, and what closes
    what they share (the demo's feed processes), once, after every source has closed."""

    sources: list[Source]
    close: Callable[[], Awaitable[None]]
    problem: str | None = None  # why it has no hosts yet (its server unreachable), for the operator
    # Hands hosts found later to the caller's runner (``runner.add``), for those who follow the fleet
    # over time (the dashboard, a recording); None for a kind whose hosts are fixed at the start.
    follow_new: Callable[[Callable[[Source], None]], None] | None = None


class FleetSourceFactory(Protocol):
    """What a ``fleet`` kind's module exposes as ``fleet_sources``; ``settings`` are the kind's own
    (the demo's DemoSpec), ``config`` the rest of the config."""

    def __call__(self, settings: Any, config: Config) -> FleetPart: ...
