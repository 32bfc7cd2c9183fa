"""The ``gputui`` command's refusals: what it says, and that it stops at once with the documented status.

Each test drives the real command (a child process, or ``gputui.cli.main``
with real files); a refusal must be one clear message on stderr, never a
traceback, a simulated fleet nobody asked for, or a process that spins.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gputui import config as cfg
from gputui.agent.main import MAX_INTERVAL_S as AGENT_MAX_S
from gputui.agent.main import MIN_INTERVAL_S as AGENT_MIN_S
from gputui.cli import main
from gputui.cli_args import INTERVAL_MAX_S, INTERVAL_MIN_S
from tests.recordings import write_sim_recording

NO_TERMINAL = "the dashboard needs a terminal"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment with no config from outside the test: the default path is under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("GPUTUI_CONFIG", "XDG_CONFIG_HOME")}
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **extra}


def gputui(tmp_path: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command with stdin and stdout not a terminal, as in a script or cron."""
    result = subprocess.run(
        [sys.executable, "-m", "gputui", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(tmp_path, **env),
        cwd=tmp_path,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def local_config(tmp_path: Path, theme: str = "gputui-dark") -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(
        f'theme = "{theme}"\n[[hosts]]\nname = "h1"\ntransport = "local"\nsim = "healthy"\ngpus = 1\n'
        'sim_processes = "synthetic"\n',
        encoding="utf-8",
    )
    return path


# -- no config and no --demo: never a simulated fleet unasked -------------------


@pytest.mark.parametrize("command", [["snapshot", "--format", "json"], ["record", "-o", "out.gtrec", "--duration", "2"]])
def test_without_a_config_or_demo_the_command_refuses_naming_where_it_looked(tmp_path: Path, command: list[str]) -> None:
    result = gputui(tmp_path, *command)
    default = tmp_path / "xdg" / "gputui" / "config.toml"
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"gputui: no config file: looked for {default} (the default; $GPUTUI_CONFIG is not set)")
    assert "--config FILE" in result.stderr and "--demo for a simulated fleet" in result.stderr
    assert not (tmp_path / "out.gtrec").exists()


def test_a_missing_file_named_by_gputui_config_is_named_with_it(tmp_path: Path) -> None:
    named = tmp_path / "gone.toml"
    result = gputui(tmp_path, "snapshot", GPUTUI_CONFIG=str(named))
    assert result.returncode == 2
    assert f"looked for {named} (named by $GPUTUI_CONFIG)" in result.stderr


def test_snapshot_and_record_with_demo_still_run_without_a_config(tmp_path: Path) -> None:
    snap = gputui(tmp_path, "snapshot", "--demo", "--hosts", "1", "--gpus", "1", "--format", "json")
    assert snap.returncode == 0, snap.stderr
    assert '"gpu-01"' in snap.stdout
    rec = gputui(tmp_path, "record", "--demo", "--hosts", "1", "--gpus", "1", "--duration", "1", "-o", "demo.gtrec")
    assert rec.returncode == 0, rec.stderr
    assert (tmp_path / "demo.gtrec").exists()


# -- the dashboard needs a terminal ------------------------------------------------


def dashboard_commands(tmp_path: Path) -> dict[str, list[str]]:
    recording = tmp_path / "short.gtrec"
    write_sim_recording(recording, hosts=1, seconds=5)
    return {
        "demo": ["demo", "--hosts", "1", "--gpus", "1"],
        "configured": ["--config", str(local_config(tmp_path))],
        "welcome": [],  # no config: the screen saying how to start
        "replay": ["replay", str(recording)],
    }


@pytest.mark.parametrize("which", ["demo", "configured", "welcome", "replay"])
def test_the_dashboard_without_a_terminal_refuses_at_once(tmp_path: Path, which: str) -> None:
    started = time.monotonic()
    result = gputui(tmp_path, *dashboard_commands(tmp_path)[which], timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # no escape codes written into a file
    assert result.stderr.startswith(f"gputui: {NO_TERMINAL}, but stdin, stdout and stderr are not one;")
    assert "`gputui snapshot`" in result.stderr and "`gputui check`" in result.stderr
    assert time.monotonic() - started < 20


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not drawn within {timeout}s; got {seen[-400:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the terminal closed: the process has gone
                break
    return seen


def demo_on_a_terminal(tmp_path: Path, redirect: str | None) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``gputui demo`` on a pseudo-terminal, with one of its streams (``redirect``) sent to a file instead."""
    leader, follower = pty.openpty()
    sink = tmp_path / "redirected.txt"
    streams = {"stdin": follower, "stdout": follower, "stderr": follower}
    with sink.open("wb") as file:
        if redirect is not None:
            streams[redirect] = file.fileno()
        env = clean_env(tmp_path, TERM="xterm-256color")
        argv = [sys.executable, "-m", "gputui", "demo", "--hosts", "1", "--gpus", "1", "--scenario", "healthy"]
        proc = subprocess.Popen(argv, env=env, stdin=streams["stdin"], stdout=streams["stdout"], stderr=streams["stderr"])
    os.close(follower)
    return proc, leader, sink


def test_the_demo_on_a_terminal_still_opens_and_quits(tmp_path: Path) -> None:
    """What `make demo` does: on a real (pseudo) terminal the dashboard draws, and `q` quits it."""
    proc, leader, _ = demo_on_a_terminal(tmp_path, None)
    try:
        drawn = read_until(leader, b"gpu-01", timeout=60)
        assert NO_TERMINAL.encode() not in drawn
        os.write(leader, b"q")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)


@pytest.mark.parametrize("redirect", ["stdin", "stdout", "stderr"])
def test_one_stream_off_the_terminal_is_named(tmp_path: Path, redirect: str) -> None:
    """Textual reads keys on stdin and draws on stderr: either redirected would spin or fill a file."""
    proc, leader, sink = demo_on_a_terminal(tmp_path, redirect)
    try:
        assert proc.wait(timeout=30) == 2
        said = read_until(leader, b"\n", timeout=5).decode() if redirect != "stderr" else sink.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert said.startswith(f"gputui: {NO_TERMINAL}, but {redirect} is not one;")
    assert "\x1b[" not in said and (redirect == "stderr" or sink.read_bytes() == b"")


# -- --interval has the config's bounds -------------------------------------------


def test_the_interval_bounds_are_the_configs() -> None:
    for ok in (INTERVAL_MIN_S, INTERVAL_MAX_S):
        assert cfg.parse({"interval": ok}, "t").interval == ok
    for bad in (INTERVAL_MIN_S - 0.001, INTERVAL_MAX_S + 0.001):
        with pytest.raises(cfg.ConfigError, match="interval"):
            cfg.parse({"interval": bad}, "t")
    assert 0 < AGENT_MIN_S <= INTERVAL_MIN_S and AGENT_MAX_S == INTERVAL_MAX_S  # the agent takes what the config allows


@pytest.mark.parametrize("value", ["0", "-1", "nan", "61", "ten"])
@pytest.mark.parametrize(
    ("command", "status"),
    [(["demo"], 2), (["snapshot", "--demo"], 2), (["check", "--demo"], 3), (["record", "--demo", "-o", "x.gtrec"], 2)],
)
def test_a_bad_interval_is_a_usage_error(command: list[str], status: int, value: str, tmp_path: Path) -> None:
    result = gputui(tmp_path, *command, "--interval", value, timeout=30)  # 0 used to spin, or record for ever
    assert result.returncode == status
    assert result.stdout == ""
    assert result.stderr.startswith(f"usage: gputui {command[0]}")
    if value == "ten":
        assert "argument --interval: not a number: 'ten'" in result.stderr
    else:
        want = f"argument --interval: must be between 0.1 and 60 seconds (as the config's interval), got {value}"
        assert want in result.stderr
    assert not (tmp_path / "x.gtrec").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "61"])
def test_the_agent_refuses_an_interval_that_would_spin(value: str, tmp_path: Path) -> None:
    result = gputui(tmp_path, "agent", "--sim", "healthy", "--gpus", "1", "--interval", value, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"argument --interval: must be between {AGENT_MIN_S:g} and {AGENT_MAX_S:g} seconds, got {value}" in result.stderr


@pytest.mark.parametrize(
    ("value", "said"), [("-1", "must be 0 (run until stopped) or more, got -1"), ("two", "expected a whole number, got 'two'")]
)
def test_the_agent_refuses_a_count_it_cannot_keep(value: str, said: str, tmp_path: Path) -> None:
    result = gputui(tmp_path, "agent", "--sim", "healthy", "--gpus", "1", "--count", value, timeout=30)
    assert (result.returncode, result.stdout) == (2, "")  # -1 used to run one sample and exit 0
    assert f"argument --count: {said}" in result.stderr


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
@pytest.mark.parametrize(("command", "status"), [(["snapshot", "--demo"], 2), (["check", "--demo"], 3), (["check-config"], 2)])
def test_a_timeout_of_no_time_is_a_usage_error(command: list[str], status: int, value: str, tmp_path: Path) -> None:
    """`--timeout 0` asked no host and then called them all unreachable."""
    result = gputui(tmp_path, *command, "--timeout", value, timeout=30)
    assert (result.returncode, result.stdout) == (status, "")
    assert f"argument --timeout: must be a positive number of seconds, got {value}" in result.stderr


@pytest.mark.parametrize(("command", "status"), [(["demo"], 2), (["snapshot", "--demo"], 2), (["check", "--demo"], 3)])
def test_a_demo_too_large_to_show_is_refused_at_once(command: list[str], status: int, tmp_path: Path) -> None:
    """--hosts 100000 used to start 196 feed processes and show nothing for minutes."""
    result = gputui(tmp_path, *command, "--hosts", "100000", timeout=30)
    assert (result.returncode, result.stdout) == (status, "")
    assert "a demo has at most 16384 hosts, not 100000" in result.stderr


@pytest.mark.parametrize(("command", "status"), [(["snapshot"], 2), (["check"], 3), (["record", "-o", "x.gtrec"], 2)])
def test_a_demos_options_with_a_configs_hosts_are_refused_not_ignored(command: list[str], status: int, tmp_path: Path) -> None:
    config = tmp_path / "local.toml"
    config.write_text('[[hosts]]\nname = "a"\ntransport = "local"\nsim = "healthy"\n')
    result = gputui(tmp_path, *command, "--config", str(config), "--seed", "3", "--hosts", "7", timeout=30)
    assert (result.returncode, result.stdout) == (status, "")
    assert "--hosts, --seed: for a simulated fleet (--demo) only; the config says which hosts, and how often" in result.stderr
    assert not (tmp_path / "x.gtrec").exists()


def test_an_unknown_scenario_is_not_called_an_nvml_failure(tmp_path: Path) -> None:
    result = gputui(tmp_path, "agent", "--once", "--sim", "bogus", "--state-dir", str(tmp_path / "state"), timeout=30)
    assert result.returncode == 2
    frame = json.loads(result.stdout)
    assert frame["message"] == "cannot start the simulated GPUs: unknown scenario 'bogus' (known: healthy, incident, mixed)"


def test_a_bad_prometheus_url_is_said_in_plain_words(tmp_path: Path) -> None:
    result = gputui(tmp_path, "snapshot", "--prometheus", "notaurl", timeout=30)
    assert result.returncode == 2
    assert result.stderr == "gputui: --prometheus: expected an http:// or https:// URL with a host, got 'notaurl'\n"


def test_options_before_agent_are_refused_as_not_the_agents(tmp_path: Path) -> None:
    """`gputui --read-only agent --once` once said that --once was unrecognised, and with no option
    after it opened the dashboard: the agent takes none of the dashboard's options."""
    for args in (["--read-only", "agent", "--once"], ["--read-only", "agent"]):
        result = gputui(tmp_path, *args, timeout=30)
        assert result.returncode == 2
        assert result.stdout == ""
        assert "`agent` comes first (gputui agent --help): the agent takes none of the dashboard's options" in result.stderr


def test_gputui_agent_help_is_the_agents(tmp_path: Path) -> None:
    result = gputui(tmp_path, "agent", "--help", timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: gputui agent ")
    assert "--once" in result.stdout and "--metrics-listen" in result.stdout


# -- record --duration and replay --speed ------------------------------------------


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_record_refuses_a_duration_that_is_not_positive(value: str, tmp_path: Path) -> None:
    out = tmp_path / "never.gtrec"
    result = gputui(tmp_path, "record", "--demo", "--duration", value, "-o", str(out), timeout=30)  # inf: for ever
    assert result.returncode == 2
    assert f"argument --duration: must be a positive number of seconds, got {value}" in result.stderr
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "0.25", "100"])
def test_replay_refuses_a_speed_outside_its_range(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["replay", str(tmp_path / "any.gtrec"), "--speed", value])
    assert stopped.value.code == 2
    assert f"argument --speed: must be between 0.5 and 16, got {value}" in capsys.readouterr().err


# -- bundle and check-config ---------------------------------------------------------


def test_bundle_into_a_missing_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "dir" / "agent.zip"
    assert main(["bundle", "-o", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"gputui: cannot write {target}: the folder {target.parent} does not exist\n"
    assert captured.out == ""
    assert main(["bundle", "-o", str(tmp_path)]) == 2  # a folder, not a file
    assert capsys.readouterr().err == f"gputui: cannot write {tmp_path}: Is a directory\n"
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["bundle", "-o", str(a_file / "agent.zip")]) == 2  # a file where the folder would be
    assert capsys.readouterr().err == f"gputui: cannot write {a_file / 'agent.zip'}: {a_file} is not a folder\n"


def test_bundle_prints_the_hash_sha256sum_gives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "agent.zip"
    assert main(["bundle", "-o", str(target)]) == 0
    assert capsys.readouterr().out == f"{target} sha256:{hashlib.sha256(target.read_bytes()).hexdigest()}\n"


def test_check_config_errors_carry_the_gputui_prefix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("intervall = 1\n", encoding="utf-8")
    result = gputui(tmp_path, "check-config", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr == f"gputui: {bad}: intervall: unknown key (check its spelling; see config.example.toml)\n"
    missing = gputui(tmp_path, "check-config", "--config", str(tmp_path / "absent.toml"))
    assert (missing.returncode, missing.stderr) == (2, f"gputui: {tmp_path / 'absent.toml'}: no such file\n")
