"""Actions end to end through the CLI on local simulated hosts: the real
guard, the real ``gputui agent --act`` child process and the real ledger
file. The SSH fleet and Slurm versions are in test_actions_fleet.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.test_action_guard import audit, gputui, write_config

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
