"""``gputui check`` as cron and monitoring run it: a real process, its output and its exit status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

NAGIOS_FIRST = re.compile(
    r"^GPUTUI (OK|WARNING|CRITICAL|UNKNOWN) - (\d+) critical, (\d+) warning(?:, (\d+) unreachable)? "
    r"\| critical=(\d+) warning=(\d+) info=(\d+) hosts=(\d+) unreachable=(\d+)$"
)
ALERT_KEYS = {"key", "rule", "severity", "host", "gpu", "title", "advice", "since", "evidence", "behind", "allocation"}


def env() -> dict[str, str]:
    """This environment without a config chosen from outside the test."""
    return {k: v for k, v in os.environ.items() if k not in ("GPUTUI_CONFIG", "XDG_CONFIG_HOME")}


def check(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gputui", "check", *args], capture_output=True, text=True, timeout=90, env=env()
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def incident_json() -> dict[str, Any]:
    result = check("--demo", "--scenario", "incident", "--hosts", "2", "--format", "json")
    assert result.returncode == 2, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_a_healthy_fleet_exits_0_and_says_ok() -> None:
    result = check("--demo", "--scenario", "healthy", "--hosts", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "gputui check: OK, 0 critical, 0 warning (3 hosts)"


def test_the_incident_exits_2_and_prints_the_planted_faults() -> None:
    result = check("--demo", "--scenario", "incident", "--hosts", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("gputui check: CRITICAL, ")
    assert "gpu-01:5      GPU 5 has fallen off the bus (lost)" in out
    assert "do: GPU has fallen off the bus: drain the node and reseat or replace; jobs on it are lost" in out
    assert "xid: 79 (GPU has fallen off the bus)" in out
    assert "gpu-01:2      GPU 2 thermal slowdown" in out
    assert "gpu-01:3      GPU 3 has 2 uncorrected ECC errors since its last reset" in out
    assert "gpu-01:3      GPU 3 has a row remap pending" in out
    assert "gpu-01:3      XID 48 on GPU 3" in out


def test_json_lists_every_alert_with_its_fields_and_counts_them(incident_json: dict[str, Any]) -> None:
    data = incident_json
    assert data["schema"] == "gputui.check/1"
    assert (data["status"], data["exit_code"]) == ("critical", 2)
    assert data["hosts"] == 2 and data["unreachable"] == []
    assert [h["name"] for h in data["fleet"]] == ["gpu-01", "gpu-02"]
    alerts = data["alerts"]
    for alert in alerts:
        assert set(alert) == ALERT_KEYS
        assert alert["severity"] in ("critical", "warning", "info")
        assert all(isinstance(v, str) for v in alert["evidence"].values())
        assert (alert["allocation"] is None) == (alert["gpu"] is None)  # a GPU's alert says who holds the GPU
    counts = {s: sum(1 for a in alerts if a["severity"] == s) for s in ("critical", "warning", "info")}
    assert data["counts"] == counts
    order = {"critical": 0, "warning": 1, "info": 2}
    assert [order[a["severity"]] for a in alerts] == sorted(order[a["severity"]] for a in alerts)
    for host in ("gpu-01", "gpu-02"):
        mine = {(a["rule"], a["gpu"]) for a in alerts if a["host"] == host}
        assert {("lost", 5), ("thermal", 2), ("ecc", 3), ("remap", 3), ("xid", 3)} <= mine, mine


def test_nagios_has_the_plugin_first_line_and_a_line_per_alert() -> None:
    result = check("--demo", "--scenario", "incident", "--hosts", "2", "--format", "nagios")
    assert result.returncode == 2
    first, *rest = result.stdout.strip().splitlines()
    match = NAGIOS_FIRST.match(first)
    assert match, first
    status, crit, warn, _, perf_crit, perf_warn, perf_info, hosts, unreachable = match.groups()
    assert status == "CRITICAL"
    assert (crit, warn) == (perf_crit, perf_warn)
    assert (hosts, unreachable) == ("2", "0")
    assert len(rest) == int(crit) + int(warn) + int(perf_info)
    assert int(crit) >= 8  # per host: lost, thermal, uncorrected ECC, XID 48
    for line in rest:
        assert re.match(r"^(CRITICAL|WARNING|INFO) gpu-0[12](:\d)? [a-z-]+: ", line), line
        assert "|" not in line  # Nagios would read it as performance data


def test_nagios_ok_for_a_healthy_fleet() -> None:
    result = check("--demo", "--scenario", "healthy", "--hosts", "2", "--format", "nagios")
    assert result.returncode == 0
    assert result.stdout.strip() == "GPUTUI OK - 0 critical, 0 warning | critical=0 warning=0 info=0 hosts=2 unreachable=0"


def test_an_unreachable_host_and_nothing_critical_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        # Nothing listens on loopback port 1: the connection is refused at once.
        "[ssh]\nconnect_timeout_s = 3\n\n"
        '[[hosts]]\nname = "far-01"\naddress = "127.0.0.1"\nport = 1\n\n'
        '[[hosts]]\nname = "near-01"\ntransport = "local"\nsim = "healthy"\ngpus = 1\nsim_processes = "synthetic"\n',
        encoding="utf-8",
    )
    result = check("--config", str(path), "--format", "nagios")
    assert result.returncode == 3, result.stdout + result.stderr
    first, *rest = result.stdout.strip().splitlines()
    assert first.startswith("GPUTUI UNKNOWN - 0 critical, 1 warning, 1 unreachable | ")
    assert first.endswith("hosts=2 unreachable=1")
    assert len(rest) == 1
    assert rest[0].startswith("WARNING far-01 down: far-01: unreachable - ")

    data = json.loads(check("--config", str(path), "--format", "json").stdout)
    assert (data["status"], data["exit_code"], data["unreachable"]) == ("unknown", 3, ["far-01"])
    (down,) = data["alerts"]
    assert down["host"] == "far-01" and "cannot connect to 127.0.0.1" in down["evidence"]["error"]


def test_a_critical_fault_outranks_an_unreachable_host(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        '[[hosts]]\nname = "far-01"\naddress = "127.0.0.1"\nport = 1\n\n'
        '[[hosts]]\nname = "near-01"\ntransport = "local"\nsim = "incident"\nsim_processes = "synthetic"\n',
        encoding="utf-8",
    )
    result = check("--config", str(path), "--format", "nagios")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("GPUTUI CRITICAL - ")
    assert "unreachable=1" in result.stdout.splitlines()[0]


def test_a_broken_config_is_unknown_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[thresholds]\ntemp_margin = 5\n", encoding="utf-8")
    result = check("--config", str(path), "--format", "nagios")
    assert result.returncode == 3
    assert result.stdout.startswith("GPUTUI UNKNOWN - ")
    assert "thresholds.temp_margin: unknown key" in result.stdout


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """`gputui check | head -1` in a script: the rest of the output has nowhere to go."""
    argv = [sys.executable, "-m", "gputui", "check", "--demo", "--scenario", "incident", "--hosts", "64"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read().decode()
    status = proc.wait(timeout=120)
    assert first.startswith(b"gputui check: CRITICAL")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert status in (2, 141)  # 2 when the pipe took it all before it closed


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--format", "nagio"], "argument --format: invalid choice: 'nagio'"),
        (["--demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["--demo", "--hosts"], "argument --hosts: expected one argument"),
        (["--demo", "--interval", "0"], "argument --interval: must be between 0.1 and 60 seconds"),
    ],
)
def test_a_usage_error_is_unknown_not_critical(args: list[str], error: str) -> None:
    """Nagios reads exit 2 as CRITICAL: a mistyped plugin command line must page as UNKNOWN (3)."""
    result = check(*args)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("usage: gputui check ")
    assert f"gputui check: error: {error}" in result.stderr


def test_no_config_and_no_demo_is_unknown_naming_where_it_looked(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gputui", "check", "--format", "nagios"],
        capture_output=True,
        text=True,
        timeout=90,
        env={**env(), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert result.returncode == 3
    assert result.stdout.startswith(f"GPUTUI UNKNOWN - no config file: looked for {tmp_path / 'gputui' / 'config.toml'} ")
    assert "--demo for a simulated fleet" in result.stdout


@pytest.mark.parametrize("fmt", ["table", "json", "nagios"])
def test_an_output_that_cannot_be_written_is_unknown_in_one_line(fmt: str) -> None:
    argv = [sys.executable, "-m", "gputui", "check", "--demo", "--scenario", "incident", "--hosts", "1", "--format", fmt]
    with open("/dev/full", "w") as full:
        result = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, timeout=90, env=env())
    assert result.returncode == 3
    assert result.stderr == "gputui check: cannot write the result: No space left on device\n"
