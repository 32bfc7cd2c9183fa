"""``gputui check --notify``: notifications from cron, with memory between runs.

Each run of ``gputui check`` is a fresh process, so what "new" means comes
from a small state file (``[notify] state_file``): the critical alerts active
at the last run, the times of the last minute's notifications and what the
rate limit held back. A cron job every five minutes therefore notifies an
alert once, not every five minutes, and again only after it cleared.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from gputui.config import Notify
from gputui.health.model import Alert
from gputui.health.notify import NoticeGate
from gputui.health.notify_send import deliver


def load_gate(settings: Notify, path: Path) -> tuple[NoticeGate, list[str]]:
    """The gate as the last run left it; a missing file is a first run, a bad one is said and replaced."""
    gate = NoticeGate(settings.max_per_minute)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return gate, []
    except (OSError, ValueError) as exc:
        return gate, [f"{path}: cannot read what was notified before ({exc}); starting afresh"]
    if isinstance(state, dict):
        gate.restore(state)
    return gate, []


def save_gate(gate: NoticeGate, path: Path) -> list[str]:
    """Write the state atomically (a cron run cut short leaves the old one whole)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(gate.state()), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        return [f"{path}: cannot save what was notified ({exc.strerror or exc}): the next run may notify again"]
    return []


def notify_once(settings: Notify, alerts: list[Alert]) -> list[str]:
    """Send what is due for ``alerts`` and wait for it; the problems, one line each. A notification
    that went no way at all (every configured way failed) is kept for the next run: a cron job
    whose pager is down pages once it is back. One that went at least one way is not sent again."""
    path = Path(settings.state_file).expanduser()
    gate, problems = load_gate(settings, path)
    notices = gate.due(alerts)

    async def send_all() -> list[list[str]]:
        return list(await asyncio.gather(*(deliver(settings, n) for n in notices)))

    ways = bool(settings.command) + bool(settings.webhook)
    undelivered = []
    for notice, found in zip(notices, asyncio.run(send_all()) if notices else [], strict=True):
        problems += found
        if len(found) >= ways:
            undelivered.append(notice)
    if undelivered:
        gate.hold_again(undelivered)
        n = len(undelivered)
        problems.append(f"{n} kept for the next run (the first: {undelivered[0].body.get('title')})")
    return problems + save_gate(gate, path)
