"""Ending a child in bounded time: one that ignores SIGTERM and fills a pipe nobody reads any
more is killed and reaped, where a plain ``wait()`` would wait for its pipe's end for ever."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from gputui.child_process import end_child

# Ignores SIGTERM, says so on stderr, then writes to stdout without end.
STUBBORN = (
    "import signal, sys\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
    "while True:\n"
    "    sys.stdout.write('x' * 65536); sys.stdout.flush()\n"
)


def listed(pid: int) -> bool:
    """Whether /proc still lists ``pid``: alive, or exited and not reaped (a zombie)."""
    return Path(f"/proc/{pid}").exists()


async def test_a_child_that_ignores_sigterm_and_fills_its_pipe_is_killed_and_reaped() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STUBBORN, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert await proc.stderr.readline() == b"ready\n"  # SIGTERM is ignored from here on
    assert len(await proc.stdout.read(65536)) > 0  # it writes; from now on nobody reads but end_child
    async with asyncio.timeout(10):
        ended = await end_child(proc, term_s=0.5, kill_s=5.0)
    assert ended
    assert proc.returncode == -signal.SIGKILL  # SIGTERM did nothing: SIGKILL ended it
    assert not listed(proc.pid)  # reaped, not a zombie


async def test_a_child_that_has_exited_is_reaped_at_once_and_not_signalled() -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass", stdout=asyncio.subprocess.PIPE)
    assert await proc.wait() == 0
    assert await end_child(proc)
    assert proc.returncode == 0
