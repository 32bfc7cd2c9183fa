"""Waiting on real events, not sleeping: process exit through a pidfd."""

from __future__ import annotations

import os
import select
import time


def wait_until_gone(pids: list[int], timeout: float) -> None:
    """Block until every pid has exited; fail naming those still alive."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # already gone
        try:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            assert ready, f"process {pid} still running after {timeout}s"
        finally:
            os.close(fd)
