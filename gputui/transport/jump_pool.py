"""One SSH connection per jump-host chain, shared by every host behind it.

A bastion in front of a hundred GPU hosts would otherwise take a hundred
handshakes at once: sshd's ``MaxStartups`` (10 by default) starts dropping
them, and every host pays for the retries. Sharing means one handshake per
hop, and each host then costs the bastion only a forwarded channel.

A connection is opened by whichever link asks first; links asking while it
opens wait on the same attempt and share its outcome (an unreachable bastion
costs one connect timeout, not one per host). It is closed when the last link
using it lets go, and replaced when it is found closed (a bastion restart).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from functools import partial

import asyncssh

Opener = Callable[[], Awaitable[asyncssh.SSHClientConnection]]


@dataclass(eq=False)
class Lease:
    """A shared hop connection and how many links use it."""

    key: Hashable
    opening: asyncio.Future[asyncssh.SSHClientConnection]
    users: int = 0
    closed: bool = field(default=False)

    @property
    def conn(self) -> asyncssh.SSHClientConnection:
        return self.opening.result()


class JumpPool:
    """Shared hop connections, keyed by everything that shapes the connection:
    the chain up to and including the hop, the user, the host-key policy and
    the keys offered."""

    def __init__(self) -> None:
        self.leases: dict[Hashable, Lease] = {}

    async def acquire(self, key: Hashable, open_hop: Opener) -> Lease:
        lease = self.leases.get(key)
        if lease is not None and lease.opening.done() and _unusable(lease):
            self._forget(lease)
            lease = None
        if lease is None:
            lease = Lease(key, asyncio.ensure_future(open_hop()))
            self.leases[key] = lease
            lease.opening.add_done_callback(partial(self._opened, lease))
        lease.users += 1
        try:
            await asyncio.shield(lease.opening)
        except BaseException:
            # Failed, or this link was cancelled while waiting: let go; the
            # attempt itself goes on for whoever else waits on it (and the
            # pool closes what it opens should nobody be left).
            if self.release(lease):
                lease.conn.close()
            raise
        return lease

    def _opened(self, lease: Lease, _done: object) -> None:
        if lease.opening.cancelled() or lease.opening.exception() is not None:
            self._forget(lease)  # the next try opens afresh
        elif lease.users == 0:
            self._close(lease)  # everyone who asked for it has gone

    def release(self, lease: Lease) -> bool:
        """Let go of ``lease``; True when that was its last user and the
        caller is to close the connection (after what ran through it)."""
        lease.users -= 1
        if lease.users > 0 or not lease.opening.done():
            return False
        self._forget(lease)
        if lease.closed:
            return False
        lease.closed = True
        return not lease.opening.cancelled() and lease.opening.exception() is None

    def _close(self, lease: Lease) -> None:
        """Close a connection nobody uses any more (its open finished after
        every link that wanted it had gone)."""
        self._forget(lease)
        if lease.closed:
            return
        lease.closed = True
        if not lease.opening.cancelled() and lease.opening.exception() is None:
            lease.conn.close()

    def _forget(self, lease: Lease) -> None:
        if self.leases.get(lease.key) is lease:
            del self.leases[lease.key]

    def open_count(self) -> int:
        """Hop connections open or opening now."""
        return len(self.leases)


def _unusable(lease: Lease) -> bool:
    if lease.opening.cancelled() or lease.opening.exception() is not None:
        return True
    return bool(lease.conn.is_closed())
