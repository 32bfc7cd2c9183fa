"""The guard's refusals, through the real CLI: nothing reaches a host unless
actions are enabled, the policy allows it and the blast radius is within
limits, and every refusal is in the audit log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gputui.actions.targets import TargetError, parse_targets
from gputui.actions.until import parse_until
from tests.action_cli import audit, gputui, write_config

HOSTS = {"gpu-07", "gpu-08"}


def test_actions_are_off_unless_enabled(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    r = gputui(config, "drain", "a:0", "--reason", "test", "--yes")
    assert r.returncode == 1
    assert "actions are off" in r.stderr
    assert [e["status"] for e in audit(tmp_path)] == ["refused"]
    assert not (tmp_path / "state").exists()  # no host was asked


def test_read_only_overrides_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "release", "a:0", "--reason", "test", "--yes", "--read-only")
    assert r.returncode == 1
    assert "read-only" in r.stderr
    # The dashboard's own flag, before the command, means the same.
    r = subprocess.run(
        [sys.executable, "-m", "gputui", "--read-only", "reserve", "a:0", "--reason", "t", "--yes", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "read-only" in r.stderr
    assert [e["status"] for e in audit(tmp_path)] == ["refused", "refused"]
    assert not (tmp_path / "state").exists()


def test_a_policy_refuses_an_operator_it_does_not_name(tmp_path: Path) -> None:
    me = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    rules = (
        "enabled = true\n[[actions.policy]]\noperators = ['someone-else']\nactions = ['*']\n"
        f"[[actions.policy]]\noperators = ['{me}']\nactions = ['reserve', 'release']\ngroups = ['train']\n"
    )
    config = write_config(tmp_path, rules)
    r = gputui(config, "drain", "a:0", "--reason", "test", "--yes")
    assert r.returncode == 1
    assert f"no rule lets {me}@" in r.stderr and "drain on a (group train)" in r.stderr
    r = gputui(config, "reserve", "b:0", "--reason", "test", "--yes")
    assert r.returncode == 1
    assert "reserve on b (group infer)" in r.stderr
    assert [e["status"] for e in audit(tmp_path)] == ["refused", "refused"]
    assert audit(tmp_path)[0]["operator"]["user"] == me  # type: ignore[index]


def test_the_blast_radius_limit_needs_force(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true\nmax_gpus = 2\nmax_hosts = 1")
    r = gputui(config, "drain", "a:0,1,2", "--reason", "test", "--yes")
    assert r.returncode == 1
    assert "would touch 3 GPUs, the limit is 2" in r.stderr
    r = gputui(config, "drain-node", "a", "b", "--reason", "test", "--yes")
    assert r.returncode == 1
    assert "would touch 2 hosts, the limit is 1" in r.stderr


def test_yes_without_a_reason_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "drain", "a:0", "--yes")
    assert r.returncode == 2
    assert "--yes needs --reason" in r.stderr


@pytest.mark.parametrize(
    ("kind", "text", "error"),
    [
        ("drain", "gpu-09:0", "host 'gpu-09' is not in the config"),
        ("drain", "gpu-07:0,x", "'x' is neither a GPU index nor a GPU UUID"),
        ("drain", "gpu-07", "drain takes GPUs"),
        ("kill", "gpu-07:0", "kill takes a process"),
        ("kill", "gpu-07:pid=-3", "pid must be a positive number"),
        ("drain-node", "gpu-07:1", "drain-node takes a whole host"),
        ("reserve", "gpu-07:1,1", "GPU 1 is named twice"),
    ],
)
def test_a_typo_in_a_target_is_an_error_never_a_wider_target(kind: str, text: str, error: str) -> None:
    with pytest.raises(TargetError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_targets(kind, [text], HOSTS)


def test_targets_by_index_uuid_and_pid() -> None:
    t = parse_targets("drain", ["gpu-07:0,3", "gpu-08:GPU-5d1c0a2b-1111"], HOSTS)
    assert [(x.host, x.gpus) for x in t] == [("gpu-07", ("0", "3")), ("gpu-08", ("GPU-5d1c0a2b-1111",))]
    assert parse_targets("kill", ["gpu-07:pid=1234"], HOSTS)[0].pid == 1234


def test_until_takes_durations_and_times_and_refuses_the_past() -> None:
    assert parse_until("2h", now=1000.0) == 1000.0 + 7200
    assert parse_until("30m", now=0.0) == 1800.0
    with pytest.raises(ValueError, match="in the past"):
        parse_until("2001-01-01 08:00")
    with pytest.raises(ValueError, match="expected a duration"):
        parse_until("tomorrow-ish")


def test_an_unwritable_audit_log_stops_the_action(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "audit.jsonl"
        blocker.mkdir()  # a folder where the log should be: unwritable even for root
    else:
        (tmp_path / "audit.jsonl").write_text("")
        (tmp_path / "audit.jsonl").chmod(0)
    config = write_config(tmp_path, "")
    r = gputui(config, "drain", "a:0", "--reason", "test", "--yes")
    assert r.returncode == 1
    assert "cannot write the audit log" in r.stderr


def test_until_refuses_a_duration_too_short_to_reach_the_hosts_or_beyond_a_year() -> None:
    with pytest.raises(ValueError, match="'0s' is too soon"):
        parse_until("0s", now=1000.0)
    assert parse_until("366d", now=0.0) == 366 * 86400
    for far in ("367d", "99999999d", "9" * 400 + "s"):
        with pytest.raises(ValueError, match="too far away: at most a year"):
            parse_until(far)


def test_times_no_clock_can_show_are_shown_as_they_are() -> None:
    from gputui.actions.render import relative, when

    assert when(1e20) == "1e+20 (not a time)" and when(float("nan")) == "nan (not a time)"
    assert (relative(7190), relative(90061), relative(-600), relative(20)) == (
        "in 2h",
        "in 1d 1h",
        "10m ago",
        "in under a minute",
    )
