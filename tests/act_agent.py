"""``gputui agent --act`` on a simulated host, asked directly: one JSON
request in, one answer out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HOST = "h1"


def act_argv(state_dir: Path) -> list[str]:
    sim = ["--sim", "healthy", "--seed", "0", "--gpus", "2"]
    return [sys.executable, "-m", "gputui", "agent", "--act", *sim, "--state-dir", str(state_dir), "--host-name", HOST]


def request(phase: str, action: str, **fields: Any) -> dict[str, Any]:
    req: dict[str, Any] = {"v": 1, "phase": phase, "action": action, "operator": {"user": "alice", "host": "console1"}}
    req.update(reason="maintenance", gpus=[], backend="ledger", audit_id="a1b2c3")
    req.update(fields)
    return req


def act(state_dir: Path, req: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        act_argv(state_dir), input=json.dumps(req), capture_output=True, text=True, timeout=60, check=False, cwd=state_dir
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (0 if answer["ok"] else 1), done.stderr
    return answer
