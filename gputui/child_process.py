"""Ending a child process in bounded time, whatever its pipes hold.

asyncio's ``Process.wait()`` returns only once the child has exited *and*
every pipe to it has reached end of file (Python 3.11 and 3.12). A pipe that
nobody reads any more (its reader was cancelled, ``communicate()`` timed out)
fills its StreamReader past the limit; asyncio then stops reading it, end of
file never arrives, and ``wait()`` never returns, although the child was
reaped long ago. A child that is still alive blocks writing to that full pipe
instead, and never gets to see its stdin close. Closing the dashboard (its
demo feeds, a local agent, a Slurm query or notify command in flight) must
not hang on either, so every child is ended here: its output is drained and
thrown away while it is signalled and waited for, each wait has a bound, and
a child still there after SIGKILL is reported, never waited on for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)
TERM_S = 2.0  # how long a child has to exit after SIGTERM before SIGKILL
KILL_S = 2.0  # how long after SIGKILL before the child is reported and left
DRAIN_CHUNK = 256 * 1024


async def end_child(proc: asyncio.subprocess.Process, term_s: float = TERM_S, kill_s: float = KILL_S) -> bool:
    """Stop ``proc`` and reap it: SIGTERM (skipped when ``term_s`` is 0), a wait of at most
    ``term_s``, then SIGKILL and a wait of at most ``kill_s``; its stdout and stderr are read and
    dropped meanwhile. True when the child has exited; False (logged) when it outlived both.

    The caller must have stopped its own readers of the child's pipes first: a stream read by two
    tasks at once refuses the second, and the drain here would then leave that pipe to fill.
    """
    drains = [asyncio.ensure_future(_discard(s)) for s in (proc.stdout, proc.stderr) if s is not None]
    try:
        steps = [(proc.terminate, term_s)] if term_s > 0 else []
        for signal, within in [*steps, (proc.kill, kill_s)]:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    signal()
            if await _exited(proc, within):
                return True
    finally:
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
    if proc.returncode is None:
        log.warning("child process %d still running %.0fs after SIGKILL; left behind", proc.pid, term_s + kill_s)
        return False
    # Exited and reaped; a pipe that stays open (a grandchild holds it) is no reason to wait on.
    return True


async def _exited(proc: asyncio.subprocess.Process, within: float) -> bool:
    """Whether ``wait()`` finished within ``within`` seconds (the child gone and its pipes at end of file)."""
    try:
        async with asyncio.timeout(within):
            await proc.wait()
    except TimeoutError:
        return False
    return True


async def _discard(stream: asyncio.StreamReader) -> None:
    """Read ``stream`` to its end, keeping nothing: a child blocked writing to a full pipe cannot exit."""
    with contextlib.suppress(RuntimeError, OSError):  # RuntimeError: another task still reads it
        while await stream.read(DRAIN_CHUNK):
            pass
