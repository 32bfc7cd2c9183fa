"""Actions end to end through the CLI on local simulated hosts: the real
guard, the real ``gputui agent --act`` child process and the real ledger
file. The SSH fleet and Slurm versions are in test_actions_fleet.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gputui.frames import Sample, parse_frame
from tests.action_cli import audit, gputui, write_config

HOSTILE = 'it\'s "hot"; $(touch /tmp/gputui-pwned) `id` && rm -rf /\nsecond line: température 温度 ✓'


def ledger(tmp_path: Path, host: str = "a") -> dict[str, Any]:
    path = tmp_path / "state" / f"ledger-{host}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def held(tmp_path: Path, host: str = "a") -> dict[str, Any]:
    """GPU index -> ledger entry, for the GPUs the ledger holds."""
    return {str(e["index"]): e for e in ledger(tmp_path, host).get("gpus", {}).values()}


def test_reserve_then_release_with_a_confirmation(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "reserve", "a:1", "--for", "team-vision", "--until", "2h", "--reason", "eval run", stdin="y\n")
    assert r.returncode == 0, r.stderr
    assert "reserve a:1" in r.stdout and "applied" in r.stdout
    entry = held(tmp_path)["1"]
    assert (entry["state"], entry["for"], entry["reason"]) == ("reserved", "team-vision", "eval run")
    r = gputui(config, "release", "a:1", "--reason", "eval done", stdin="y\n")
    assert r.returncode == 0, r.stderr
    assert held(tmp_path) == {}
    statuses = [e["status"] for e in audit(tmp_path)]
    assert statuses == ["started", "applied", "started", "applied"]
    assert audit(tmp_path)[1]["ref"] == audit(tmp_path)[0]["id"]


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "drain", "a:0,1", "--reason", "check", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "dry run" in r.stdout and "GPU 0" in r.stdout
    assert held(tmp_path) == {}
    assert [e["status"] for e in audit(tmp_path)] == ["dry-run"]


def test_a_drain_needs_the_host_name_typed(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "drain", "a:0", "--reason", "xid 79", stdin="y\n")
    assert r.returncode == 1
    assert "type 'a' to go ahead" in r.stderr and "cancelled" in r.stderr
    assert held(tmp_path) == {}
    r = gputui(config, "drain", "a:0", "--reason", "xid 79", stdin="a\n")
    assert r.returncode == 0, r.stderr
    assert held(tmp_path)["0"]["state"] == "drained"
    assert [e["status"] for e in audit(tmp_path)] == ["cancelled", "started", "applied"]


def test_a_hostile_reason_is_stored_verbatim_and_never_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    Path("/tmp/gputui-pwned").unlink(missing_ok=True)
    r = gputui(config, "reserve", "a:2", "--reason", HOSTILE, "--yes")
    assert r.returncode == 0, r.stderr
    assert held(tmp_path)["2"]["reason"] == HOSTILE
    assert audit(tmp_path)[-1]["reason"] == HOSTILE
    assert not Path("/tmp/gputui-pwned").exists()


def test_two_operators_at_once_one_wins_one_is_told(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    argv = [sys.executable, "-m", "gputui", "reserve", "a:3", "--yes", "--config", str(config)]
    procs = [
        subprocess.Popen([*argv, "--for", who, "--reason", f"for {who}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for who in ("alice", "bob")
    ]
    results = [(p.wait(timeout=60), p.stderr.read().decode() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "conflict" in loser or "reserved" in loser
    assert held(tmp_path)["3"]["for"] in ("alice", "bob")


class HostAgent:
    """Host ``a``'s streaming agent (as in the config: sim healthy, seed 0), sharing the
    state dir, so that its GPUs run processes the CLI's ``--act`` agents see."""

    def __init__(self, tmp_path: Path, processes: str = "standin") -> None:
        sim = ["--sim", "healthy", "--seed", "0", "--sim-processes", processes, "--host-name", "a"]
        argv = [sys.executable, "-m", "gputui.agent", "--interval", "0.1", "--state-dir", str(tmp_path / "state"), *sim]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def busy_gpu(self, timeout: float = 30.0) -> tuple[int, int]:
        """(GPU index, pid) of a GPU with a process on it."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, "the streaming agent stopped"
            frame = parse_frame(line)
            if isinstance(frame, Sample):
                busy = [(g.index, g.processes[0].pid) for g in frame.gpus if g.processes]
                if busy:
                    return busy[0]
        raise AssertionError(f"no GPU process within {timeout}s")

    def close(self) -> None:
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def host_a(tmp_path: Path) -> Iterator[HostAgent]:
    agent = HostAgent(tmp_path)
    yield agent
    agent.close()


def at_a_terminal() -> None:
    """Ctrl-C as an operator's terminal delivers it. A test run started in the background of a
    shell without job control (``make test &`` in a script) has SIGINT ignored, its children
    inherit that, and Python then never turns SIGINT into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c_at(config: Path, prompt: str, *args: str) -> tuple[int, str]:
    """Run the CLI, press Ctrl-C once at ``prompt`` (stdin left open); its status and stderr."""
    argv = [sys.executable, "-m", "gputui", *args, "--config", str(config)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=at_a_terminal
    )
    assert proc.stderr is not None
    said, deadline = b"", time.monotonic() + 60
    while prompt.encode() not in said:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(proc.stderr.fileno(), 4096) if ready else b""
        assert chunk, f"no prompt {prompt!r}: {said.decode()}"
        said += chunk
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"one Ctrl-C did not end it: {said.decode()}") from None
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
    return proc.returncode, (said + proc.stderr.read()).decode()


def test_ctrl_c_at_the_confirmation_cancels_at_once_and_is_audited(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    status, err = ctrl_c_at(config, "type 'a' to go ahead: ", "drain", "a:0", "--reason", "xid 79")
    assert status == 1 and "Traceback" not in err, err
    assert "cancelled: Ctrl-C at the confirmation; nothing was changed" in err
    assert [(e["status"], e["message"]) for e in audit(tmp_path)] == [
        ("cancelled", "cancelled: Ctrl-C at the confirmation; nothing was changed")
    ]
    assert held(tmp_path) == {}


def test_ctrl_c_or_the_end_of_input_at_the_reason_prompt_cancels_quietly(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    status, err = ctrl_c_at(config, "reason (for the audit log): ", "drain", "a:0")
    assert status == 1 and "Traceback" not in err, err
    assert "cancelled (Ctrl-C at the reason prompt); nothing was done" in err
    r = gputui(config, "drain", "a:0", stdin="")
    assert r.returncode == 1 and "cancelled (end of input at the reason prompt)" in r.stderr
    assert audit(tmp_path) == []  # nothing was planned, so nothing to record


def test_the_end_of_input_at_the_confirmation_cancels(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "reserve", "a:0", "--reason", "eval", stdin="")
    assert r.returncode == 1 and "end of input at the confirmation" in r.stderr
    assert [e["status"] for e in audit(tmp_path)] == ["cancelled"]


@pytest.mark.parametrize("grace", ["nan", "inf", "-1", "301", "soon"])
def test_a_grace_the_hosts_would_refuse_is_a_usage_error(tmp_path: Path, grace: str) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "kill", "a:pid=4242", "--grace", grace, "--kill-after", "--reason", "stuck", "--yes")
    assert r.returncode == 2
    assert f"argument --grace: expected seconds from 0 to 300, got {grace!r}" in r.stderr
    assert audit(tmp_path) == []


def test_a_grace_of_0_needs_kill_after_and_reaches_the_host_as_0(tmp_path: Path, host_a: HostAgent) -> None:
    config = write_config(tmp_path, "enabled = true")
    _, pid = host_a.busy_gpu()
    r = gputui(config, "kill", f"a:pid={pid}", "--grace", "0", "--reason", "stuck", "--yes")
    assert r.returncode == 2 and "--grace 0 means SIGKILL at once, so it needs --kill-after" in r.stderr
    r = gputui(config, "kill", f"a:pid={pid}", "--grace", "0", "--kill-after", "--reason", "stuck", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "SIGTERM, then SIGKILL at once" in r.stdout and "then SIGKILL at once if it is still running" in r.stdout
    assert "wait up to 10 s" not in r.stdout


def test_until_is_refused_locally_when_too_soon_or_too_far(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    for until, why in (
        ("0s", "is too soon"),
        ("99999999d", "is too far away: at most a year"),
        ("9999-01-01", "is too far away"),
    ):
        r = gputui(config, "reserve", "a:1", "--until", until, "--reason", "eval", "--yes")
        assert r.returncode == 2 and f"--until {until!r} {why}" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert audit(tmp_path) == []


def test_the_preview_shows_until_as_a_local_time_and_how_far_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "reserve", "a:1", "--for", "bob", "--until", "2h", "--reason", "eval", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert not re.search(r"\d{10}\.\d", r.stdout), r.stdout  # no epoch seconds
    later = [dt.datetime.fromtimestamp(time.time() + 7200 + d).strftime("%Y-%m-%d %H:%M") for d in (-60, 0)]
    assert any(f"until: {t}" in r.stdout and f"until {t}" in r.stdout for t in later), r.stdout
    assert r.stdout.count("(in 2h)") == 2  # in the header and in the host's step


def test_the_preview_says_a_gpu_is_busy_not_free_when_processes_run_on_it(tmp_path: Path, host_a: HostAgent) -> None:
    config = write_config(tmp_path, "enabled = true")
    gpu, pid = host_a.busy_gpu()
    r = gputui(config, "drain", f"a:{gpu}", "--reason", "check", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "now free" not in r.stdout
    assert f"busy: 1 process (pid {pid}); ledger: free" in r.stdout, r.stdout
    assert re.search(rf"affects: pid {pid} user \S+ GPU {gpu}: .*gputui\.sim\.standin", r.stdout), r.stdout


def test_a_process_the_host_cannot_see_in_proc_is_said_so(tmp_path: Path) -> None:
    agent = HostAgent(tmp_path, processes="synthetic")  # pids no /proc has
    try:
        gpu, pid = agent.busy_gpu()
        config = write_config(tmp_path, "enabled = true")
        r = gputui(config, "drain", f"a:{gpu}", "--reason", "check", "--dry-run")
    finally:
        agent.close()
    assert r.returncode == 0, r.stderr
    assert f"affects: pid {pid} GPU {gpu}: user and command unknown: the host's /proc has no such pid" in r.stdout
