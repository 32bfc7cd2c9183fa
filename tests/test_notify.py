"""Notifications of new critical alerts: a real HTTP receiver, a real command, the real dashboard and check.

The receiver is ``http.server`` on 127.0.0.1 (an ephemeral port, in a
thread); the command is a small Python script writing its argv and stdin
to a file. Every wait is on a delivery finishing (``Notifier.flush``) or on
what arrived, never a sleep.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gputui import config as cfg
from gputui.config import Notify
from gputui.health.model import Alert, Severity
from gputui.health.notify import WINDOW_S, NoticeGate
from gputui.health.notify_send import Notifier
from gputui.ui.launch import configured_app
from tests.waiting import wait_for

T0 = 1_760_000_000.0
WRITER = """import json, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv[2:], "stdin": sys.stdin.read()}) + "\\n")
"""


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Receiver:
    """A webhook receiver: each POST's JSON body goes into ``bodies``."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: queue.Queue[dict[str, Any]] = queue.Queue()
        bodies, answer = self.bodies, status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                bodies.put(json.loads(data))
                self.send_response(answer)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def got(self) -> list[dict[str, Any]]:
        """Everything received so far (call after the deliveries finished)."""
        out = []
        while not self.bodies.empty():
            out.append(self.bodies.get_nowait())
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def alert(n: int, severity: Severity = Severity.CRITICAL, title: str = "") -> Alert:
    return Alert(
        f"lost:gpu-{n:02d}:5", "lost", severity, f"gpu-{n:02d}", 5, title or f"GPU 5 has fallen off the bus (lost) #{n}",
        "drain the node and reseat or replace", T0 - 30, {"lost": "yes"},
    )  # fmt: skip


def notifier(settings: Notify, clock: Clock) -> tuple[Notifier, list[str]]:
    problems: list[str] = []
    return Notifier(settings, problems.append, NoticeGate(settings.max_per_minute, clock)), problems


async def test_a_new_critical_alert_is_posted_once_and_again_only_after_it_cleared(receiver: Receiver) -> None:
    clock = Clock(T0)
    n, problems = notifier(Notify(webhook=receiver.url), clock)
    n.consider([alert(1), alert(2, Severity.WARNING)])
    await n.flush()
    [body] = receiver.got()
    assert body == {
        "schema": "gputui.notify/1", "kind": "alert", "severity": "critical", "host": "gpu-01", "gpu": 5,
        "where": "gpu-01:5", "title": "GPU 5 has fallen off the bus (lost) #1", "advice": "drain the node and reseat or replace",
        "time": T0, "since": T0 - 30, "rule": "lost", "key": "lost:gpu-01:5", "evidence": {"lost": "yes"}, "behind": [],
    }  # fmt: skip
    for _ in range(3):  # refreshes while it stays active
        clock.t += 1
        n.consider([alert(1), alert(2, Severity.WARNING)])
    await n.flush()
    assert receiver.got() == []
    n.consider([])  # cleared
    n.consider([alert(1)])  # and back
    await n.flush()
    assert [b["key"] for b in receiver.got()] == ["lost:gpu-01:5"]
    assert problems == [] and n.delivered == 2


async def test_over_the_rate_limit_the_rest_is_summarised_with_its_count(receiver: Receiver) -> None:
    clock = Clock(T0)
    n, _ = notifier(Notify(webhook=receiver.url, max_per_minute=3), clock)
    n.consider([alert(i) for i in range(1, 6)])
    await n.flush()
    bodies = sorted(receiver.got(), key=lambda b: b["kind"])
    assert [b["kind"] for b in bodies] == ["alert", "alert", "summary"]
    summary = bodies[2]
    assert summary["count"] == 3
    assert [a["key"] for a in summary["alerts"]] == ["lost:gpu-03:5", "lost:gpu-04:5", "lost:gpu-05:5"]
    assert summary["title"].startswith("3 critical alerts over the limit of 3 notifications a minute: gpu-03:5: GPU 5")
    clock.t += 30  # the minute is not over: two more are held, not dropped
    n.consider([alert(i) for i in range(1, 8)])
    await n.flush()
    assert receiver.got() == []
    clock.t += 31
    n.consider([alert(i) for i in range(1, 8)])
    await n.flush()
    assert sorted(b["key"] for b in receiver.got()) == ["lost:gpu-06:5", "lost:gpu-07:5"]


async def test_a_receiver_that_is_down_or_refuses_is_reported_and_nothing_breaks() -> None:
    clock = Clock(T0)
    n, problems = notifier(Notify(webhook=closed_url()), clock)
    n.consider([alert(1)])
    await n.flush()
    assert len(problems) == 1 and problems[0].startswith("webhook http://127.0.0.1:") and "not reached" in problems[0]
    refusing = Receiver(status=500)
    try:
        n2, problems2 = notifier(Notify(webhook=refusing.url), clock)
        n2.consider([alert(1)])
        await n2.flush()
        assert problems2 == [f"webhook {refusing.url} answered HTTP 500 Internal Server Error"]
        assert n2.delivered == 0
    finally:
        refusing.close()


def any_exists(*paths: Path) -> bool:
    return any(p.exists() for p in paths)


async def test_the_command_gets_its_arguments_verbatim_with_no_shell(tmp_path: Path) -> None:
    script, out = tmp_path / "writer.py", tmp_path / "got.jsonl"
    script.write_text(WRITER)
    title = "GPU 5 $(touch pwned) ; rm -rf / `id` && echo 'x' \"y\""
    argv = [sys.executable, str(script), str(out), "{title}", "at {where} ({severity})", "$HOME;{gpu}"]
    n, problems = notifier(Notify(command=argv), Clock(T0))
    n.consider([alert(1, title=title)])
    await n.flush()
    assert problems == []
    [got] = [json.loads(line) for line in out.read_text().splitlines()]
    assert got["argv"] == [title, "at gpu-01:5 (critical)", "$HOME;5"]
    assert json.loads(got["stdin"])["title"] == title
    assert not any_exists(tmp_path / "pwned", Path.cwd() / "pwned")  # where a shell would have made it


async def test_a_command_that_fails_or_hangs_is_reported_and_stopped(tmp_path: Path) -> None:
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('pager: no route\\n'); sys.exit(3)"]
    n, problems = notifier(Notify(command=failing), Clock(T0))
    n.consider([alert(1)])
    await n.flush()
    assert problems == [f"notify command {sys.executable} failed (status 3): pager: no route"]
    hanging = [sys.executable, "-c", "import threading; threading.Event().wait()"]  # never ends by itself
    n, problems = notifier(Notify(command=hanging, timeout_s=0.5), Clock(T0))
    n.consider([alert(1)])
    await n.flush()
    assert problems == [f"notify command {sys.executable} took over 0.5s and was stopped"]


async def test_a_notifier_closed_as_the_dashboard_quits_sends_nothing_after(tmp_path: Path) -> None:
    """A health pass that ends while the dashboard quits must start no command: nothing would stop
    it but the event loop's own shutdown, and a command cancelled that way as it starts hangs the
    quit for ever."""
    script, out = tmp_path / "writer.py", tmp_path / "got.jsonl"
    script.write_text(WRITER)
    n, problems = notifier(Notify(command=[sys.executable, str(script), str(out), "{title}"]), Clock(T0))
    await n.close()
    n.consider([alert(1)])
    assert not n.pending
    await n.flush()
    assert problems == [] and n.delivered == 0 and not out.exists()


def write_config(path: Path, notify: str) -> Path:
    path.write_text(notify + '\n[[hosts]]\nname = "h"\ntransport = "local"\n')
    return path


@pytest.mark.parametrize(
    ("section", "said"),
    [
        ('command = "page-oncall $TITLE"', "notify.command: expected a list of arguments such as"),
        ('command = ["page", "{titel}"]', "notify.command: argument 1 ('{titel}') names {titel}; known: {severity}"),
        ('webhook = "hooks.example.com/x"', "notify.webhook: expected an http:// or https:// URL with a host"),
        ("max_per_minute = 0", "notify.max_per_minute: input should be greater than or equal to 1, got 0"),
        ("timeout_s = -1", "notify.timeout_s: input should be greater than 0, got -1"),
        ("url = 'http://x'", "notify.url: unknown key"),
    ],
)
def test_a_bad_notify_section_names_the_file_the_key_and_what_was_expected(tmp_path: Path, section: str, said: str) -> None:
    path = write_config(tmp_path / "config.toml", f"[notify]\n{section}\n")
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.load(path)
    assert str(caught.value).startswith(f"{path}: {said}"), str(caught.value)


async def test_the_dashboard_notifies_of_a_planted_fault_and_says_when_a_notification_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    script, out = tmp_path / "writer.py", tmp_path / "got.jsonl"
    script.write_text(WRITER)
    path = tmp_path / "config.toml"
    path.write_text(
        f'interval = 0.2\n[thresholds]\nalert_hold_s = 0.5\n[actions]\naudit_log = "{tmp_path}/audit.jsonl"\n'
        f'[notify]\nwebhook = "{receiver.url}"\nmax_per_minute = 100\n'
        '[[hosts]]\nname = "h"\ntransport = "local"\nsim = "incident"\ngpus = 8\nsim_processes = "synthetic"\n'
    )
    app = configured_app(path, cfg.load(path))
    lost: list[dict[str, Any]] = []

    def lost_posted() -> bool:
        lost.extend(receiver.got())
        return any(b["rule"] == "lost" for b in lost)

    async with app.run_test(size=(150, 40)) as pilot:
        await wait_for(pilot, lost_posted, "the lost GPU's notification", timeout=30)
        assert [b["where"] for b in lost if b["rule"] == "lost"] == ["h:5"]
        assert app.notifier is not None
        await app.notifier.flush()
        app.notifier.settings = Notify(webhook=closed_url(), command=[sys.executable, str(script), str(out), "{title}"])
        app.notifier.consider([alert(9)])
        await wait_for(pilot, lambda: any("notification not sent: webhook" in str(n.message) for n in app._notifications),
                       "the failure on screen")  # fmt: skip
        await app.notifier.flush()
        assert json.loads(out.read_text())["argv"] == [alert(9).title]  # the command still went
        assert app.is_running
    assert sum(1 for b in lost + receiver.got() if b["rule"] == "lost") == 1  # never again while it stayed active


def check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``gputui --config CONFIG check ARGS``: the demo fleet with the config's [notify]."""
    env = {k: v for k, v in os.environ.items() if k not in ("GPUTUI_CONFIG", "XDG_CONFIG_HOME")}
    run = [sys.executable, "-m", "gputui", "--config", str(config), "check", *args]
    return subprocess.run(run, capture_output=True, text=True, timeout=120, env=env)


def test_check_notify_sends_new_critical_alerts_once_across_runs(tmp_path: Path, receiver: Receiver) -> None:
    state = tmp_path / "state" / "notified.json"
    path = tmp_path / "config.toml"
    path.write_text(f'[notify]\nwebhook = "{receiver.url}"\nstate_file = "{state}"\n')
    demo = ("--demo", "--scenario", "incident", "--hosts", "1", "--format", "json")
    first = check(path, *demo, "--notify")
    assert first.returncode == 2, first.stdout + first.stderr
    critical = {a["key"] for a in json.loads(first.stdout)["alerts"] if a["severity"] == "critical"}
    sent = receiver.got()  # the check waited for its deliveries before it exited
    assert {b["key"] for b in sent} == critical and len(sent) == len(critical) > 0
    second = check(path, *demo, "--notify")
    assert second.returncode == 2 and second.stderr == ""
    assert receiver.got() == []  # still active: not again
    assert set(json.loads(state.read_text())["known"]) == critical


def test_check_notify_keeps_what_it_could_not_send_for_the_next_run(tmp_path: Path, receiver: Receiver) -> None:
    """A cron job whose receiver is down: the run says so, and the next run after the receiver
    is back sends those alerts (they are still active, so they would never be new again)."""
    state = tmp_path / "state" / "notified.json"
    path = tmp_path / "config.toml"
    demo = ("--demo", "--scenario", "incident", "--hosts", "1", "--format", "json")
    path.write_text(f'[notify]\nwebhook = "{closed_url()}"\nstate_file = "{state}"\n')
    down = check(path, *demo, "--notify")
    assert down.returncode == 2, down.stdout + down.stderr
    critical = {a["key"] for a in json.loads(down.stdout)["alerts"] if a["severity"] == "critical"}
    said = down.stderr.splitlines()
    assert sum("notification not sent: webhook" in line for line in said) == len(critical) > 0
    assert said[-1].startswith(f"gputui check: notification not sent: {len(critical)} kept for the next run (the first: ")
    path.write_text(f'[notify]\nwebhook = "{receiver.url}"\nstate_file = "{state}"\n')
    back = check(path, *demo, "--notify")
    assert back.returncode == 2 and back.stderr == ""
    assert {b["key"] for b in receiver.got()} == critical
    again = check(path, *demo, "--notify")
    assert again.stderr == "" and receiver.got() == []  # sent once: not again while still active


def test_notifications_kept_after_a_failed_send_go_out_as_alerts_once_with_the_time_they_go() -> None:
    """What a failed send keeps is the alerts themselves, never a summary to be summarised again;
    an alert that clears and comes back while kept is one page, dated when it is sent."""
    clock = Clock(T0)
    gate = NoticeGate(3, clock)
    first = gate.due([alert(n) for n in range(1, 7)])
    assert [n.body["kind"] for n in first] == ["alert", "alert", "summary"] and first[2].body["count"] == 4
    gate.hold_again(first)  # nothing went: every one kept, the minute's slots given back
    assert [b["key"] for b in gate.held] == [alert(n).key for n in range(1, 7)] and gate.sent == []
    gate.sent = [clock.t] * 3  # the minute's slots taken: the next look sends nothing
    assert gate.due([alert(n) for n in range(2, 7)]) == []  # meanwhile alert 1 cleared...
    clock.t += WINDOW_S
    again = gate.due([alert(n) for n in range(1, 9)])  # ... and came back, with 7 and 8 new
    keys = [b["key"] for n in again for b in n.covers]
    assert sorted(keys) == sorted(alert(n).key for n in range(1, 9)) and len(keys) == len(set(keys))
    summary = again[2].body
    assert summary["count"] == 6 and all(a["kind"] == "alert" for a in summary["alerts"])
    assert "None" not in summary["where"] and summary["where"] == ", ".join(f"gpu-{n:02d}" for n in range(3, 9))
    assert again[0].body["time"] == round(T0 + WINDOW_S, 3)  # kept a minute: dated when it goes


def test_check_notify_without_a_notify_section_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    result = check(path, "--demo", "--hosts", "1", "--notify")
    assert result.returncode == 3
    assert result.stderr.strip() == "gputui check: --notify: the config has no [notify] command or webhook"
