"""Connects sources to the store: one task per host, failures kept per host.

A source that fails is tried again after an exponential backoff with jitter,
so that a rack coming back does not get a thousand handshakes in the same
second; a host that stayed up for a while starts again from the shortest
delay. ``retry_now`` cuts a wait short (the operator's "retry" key).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Protocol

from gputui.fleet.store import FleetStore
from gputui.frames import FrameError
from gputui.slurm.model import SlurmView
from gputui.sources.base import LinkError, Source

log = logging.getLogger(__name__)
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
HEALTHY_AFTER_S = 30.0


class Tap(Protocol):
    """Sees what the store sees, before it is parsed: a recorder (gputui/record)."""

    def line(self, host: str, data: bytes) -> None: ...

    def ended(self, host: str, error: str) -> None: ...


async def follow_once(source: Source, store: FleetStore, taps: Sequence[Tap] = ()) -> None:
    """Read one host until its source ends.

    A malformed frame marks the host and resets its connection: a host that
    sends garbage is not trusted to be in sync with its own output.
    """
    name = source.name
    arrivals = Arrivals(name, source, store, taps)

    try:
        try:
            await source.follow(arrivals, partial(store.apply, name))
        except FrameError as exc:
            store.mark_bad_frame(name, str(exc))
            raise LinkError(f"{exc}: connection reset") from None
        store.mark_down(name, "connection closed")
    except LinkError as exc:
        store.set_via(name, source.via)
        store.mark_down(name, str(exc), hop=exc.hop)
    except OSError as exc:
        store.mark_down(name, f"I/O error: {exc}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("following %s failed", name)
        store.mark_down(name, f"internal error: {exc!r} (will retry)")
    finally:
        await source.close()


class Arrivals:
    """What a source calls with each line it received: the first one says the host is
    connected (its jump hosts are known then); every one goes to the taps (a recorder)."""

    def __init__(self, name: str, source: Source, store: FleetStore, taps: Sequence[Tap]) -> None:
        self.name, self.source, self.store, self.taps = name, source, store, taps
        self.routed = False

    @property
    def listening(self) -> bool:
        return bool(self.taps)

    def __call__(self, line: bytes) -> None:
        if not self.routed:
            self.store.set_via(self.name, self.source.via)
            self.routed = True
        for tap in self.taps:
            tap.line(self.name, line)


def backoff(attempt: int, rng: random.Random) -> float:
    """Jitter: uniform in [0.5, 1] of the exponential delay, the first one too,
    so that a blip on the dashboard's side does not reconnect a fleet at once."""
    delay: float = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(attempt, 16))
    return delay * rng.uniform(0.5, 1.0)


class FleetRunner:
    def __init__(self, sources: Iterable[Source], store: FleetStore, reconnect: bool = True) -> None:
        self.sources = list(sources)
        self.store = store
        self.reconnect = reconnect
        self.tasks: list[asyncio.Task[None]] = []
        self.wakeups: dict[str, asyncio.Event] = {}
        self.rng = random.Random()
        self.taps: list[Tap] = []  # recorders listening; a running source sees one added later
        for source in self.sources:
            store.add_host(source.name)

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self._keep_following(source)) for source in self.sources]

    def add(self, source: Source, tags: tuple[str, ...] = (), group: str | None = None) -> None:
        """Follow one more host from now on (a host added while running)."""
        self.sources.append(source)
        self.store.add_host(source.name, tags, group)
        self.tasks.append(asyncio.ensure_future(self._keep_following(source)))

    async def _keep_following(self, source: Source) -> None:
        wake = self.wakeups.setdefault(source.name, asyncio.Event())
        attempt = 0
        while True:
            self.store.mark_connecting(source.name)
            started = time.monotonic()
            await follow_once(source, self.store, self.taps)
            for tap in self.taps:  # the host is down now, and the store says why
                tap.ended(source.name, self.store.hosts[source.name].error or "connection closed")
            if not self.reconnect:
                return
            attempt = 0 if time.monotonic() - started > HEALTHY_AFTER_S else attempt + 1
            delay = backoff(max(0, attempt - 1), self.rng)
            self.store.set_retry(source.name, delay)
            wake.clear()
            try:
                async with asyncio.timeout(delay):
                    await wake.wait()
            except TimeoutError:
                pass

    def follow_cluster(self, follow: Callable[[Callable[[SlurmView], None]], Awaitable[None]]) -> None:
        """Keep the store's view of the site's Slurm fresh (``SlurmReader.follow``), for as long as the hosts."""
        self.tasks.append(asyncio.ensure_future(follow(self.store.set_slurm)))

    def retry_now(self, name: str) -> None:
        event = self.wakeups.get(name)
        if event is not None:
            event.set()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(source.close() for source in self.sources), return_exceptions=True)
