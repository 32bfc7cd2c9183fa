"""Delivering notifications: a command and/or a webhook, never in the way.

The command is an argument list from the config, run without a shell: an
alert's title goes into an argument (or the JSON body onto stdin) as it is,
so a title with ``$(...)`` or ``;`` in it is text, never code. The webhook
is an HTTP POST of the same JSON, made in a worker thread (stdlib urllib:
nothing to install on an air-gapped console).

Each attempt has the config's timeout. A failure (a command that exits
non-zero, a receiver down, a timeout) is logged and handed to ``report`` as
one line for the operator; it never raises into the dashboard's loop or the
check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Sequence

from gputui import __version__
from gputui.child_process import end_child
from gputui.config import PLACEHOLDER, Notify
from gputui.health.model import Alert
from gputui.health.notify import Notice, NoticeGate
from gputui.health.words import short

log = logging.getLogger(__name__)


def command_argv(template: Sequence[str], notice: Notice) -> list[str]:
    """The command's arguments with ``{placeholders}`` replaced, each within its own argument."""
    values = notice.fields()
    return [PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), arg) for arg in template]


async def run_command(template: Sequence[str], notice: Notice, timeout_s: float) -> str | None:
    """Run the command with the JSON body on stdin; None when it succeeded, else what went wrong."""
    argv = command_argv(template, notice)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"notify command {argv[0]} cannot start: {exc.strerror or exc}"
    try:
        async with asyncio.timeout(timeout_s):
            _, err = await proc.communicate(json.dumps(notice.body).encode() + b"\n")
    except TimeoutError:
        return f"notify command {argv[0]} took over {timeout_s:g}s and was stopped"
    finally:
        if proc.returncode is None:  # timed out or cancelled: it must not outlive the attempt
            await end_child(proc, term_s=0)
    if proc.returncode != 0:
        tail = short(err.decode("utf-8", "replace").strip().splitlines()[-1] if err.strip() else "", 120)
        return f"notify command {argv[0]} failed (status {proc.returncode}){': ' + tail if tail else ''}"
    return None


def _post(url: str, data: bytes, timeout_s: float) -> None:
    request = urllib.request.Request(
        url, data, {"Content-Type": "application/json", "User-Agent": f"gputui/{__version__}"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # http(s) only: the config checks it
        answer.read(65536)


async def post_webhook(url: str, notice: Notice, timeout_s: float) -> str | None:
    """POST the JSON body; None when the receiver took it (2xx), else what went wrong."""
    data = json.dumps(notice.body).encode()
    try:
        await asyncio.to_thread(_post, url, data, timeout_s)
    except urllib.error.HTTPError as exc:
        return f"webhook {url} answered HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return f"webhook {url} not reached: {getattr(exc.reason, 'strerror', None) or exc.reason}"
    except TimeoutError:
        return f"webhook {url} gave no answer within {timeout_s:g}s"
    except (OSError, ValueError) as exc:
        return f"webhook {url} failed: {exc}"
    return None


async def deliver(settings: Notify, notice: Notice) -> list[str]:
    """Send ``notice`` every configured way at once; the problems, one line each (none: all went)."""
    attempts = []
    if settings.command:
        attempts.append(run_command(settings.command, notice, settings.timeout_s))
    if settings.webhook:
        attempts.append(post_webhook(settings.webhook, notice, settings.timeout_s))
    outcomes = await asyncio.gather(*attempts)
    return [problem for problem in outcomes if problem is not None]


class Notifier:
    """The gate and the deliveries of one dashboard (or one ``gputui check --notify``)."""

    def __init__(self, settings: Notify, report: Callable[[str], None], gate: NoticeGate | None = None) -> None:
        self.settings = settings
        self.report = report  # told each failure, one line
        self.gate = gate if gate is not None else NoticeGate(settings.max_per_minute)
        self.pending: set[asyncio.Task[None]] = set()
        self.delivered = 0  # notifications that went out every configured way
        self.closed = False

    def consider(self, alerts: Sequence[Alert], quiet: Collection[str] = ()) -> None:
        """Look at the active alerts; send what is due in the background (never waits for it).
        Once closed, nothing: a send started while the dashboard quits would be left to the event
        loop's own shutdown, which cancels every task at once, asyncio's own helpers too, and a
        command cancelled that way while its process starts waits for ever (Python 3.11)."""
        if self.closed:
            return
        for notice in self.gate.due(alerts, quiet):
            task = asyncio.ensure_future(self._send(notice))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _send(self, notice: Notice) -> None:
        try:
            problems = await deliver(self.settings, notice)
        except Exception as exc:  # a bug here must not cost the dashboard: say it instead
            log.exception("notification failed")
            problems = [f"notification failed: {type(exc).__name__}: {exc}"]
        if not problems:
            self.delivered += 1
        for problem in problems:
            log.warning("%s (alert: %s)", problem, notice.body.get("title"))
            self.report(problem)

    async def flush(self) -> None:
        """Wait for the notifications under way (each is bounded by the timeout)."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    async def close(self) -> None:
        """Stop what is under way (the dashboard is quitting), and start nothing after."""
        self.closed = True
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*list(self.pending), return_exceptions=True)
