"""Waiting on real events, not sleeping: process exit through a pidfd, and
conditions in a running app through the pilot."""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot


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


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Let the app run until ``predicate`` holds; fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause()


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 10.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` (a condition in another process: a port that answers,
    a value that shows) until it returns something true, which is returned;
    fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


async def wait_true(predicate: Callable[[], Any], what: str, timeout: float = 10.0, every: float = 0.05) -> Any:
    """In a test's own event loop (no app, no pilot): let it run until ``predicate`` holds, looking
    every ``every`` seconds (a state that changes with time alone, such as stale, fires no event);
    fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)
