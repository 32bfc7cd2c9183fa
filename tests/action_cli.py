"""The action commands as an operator runs them: a config with ``[actions]``
on two local simulated hosts, ``gputui`` in a subprocess, and the audit log
it leaves in the test's tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def write_config(tmp_path: Path, actions: str, groups: str = "") -> Path:
    hosts = "".join(
        f'[[hosts]]\nname = "{n}"\ntransport = "local"\nsim = "healthy"\ngroup = "{g}"\n'
        for n, g in (("a", "train"), ("b", "infer"))
    )
    path = tmp_path / "config.toml"
    path.write_text(
        f'[groups.train]\n[groups.infer]\n{groups}\n[actions]\naudit_log = "{tmp_path}/audit.jsonl"\n'
        f'state_dir = "{tmp_path}/state"\n{actions}\n{hosts}'
    )
    return path


def gputui(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gputui", *args, "--config", str(config)], input=stdin, capture_output=True, text=True, timeout=60
    )


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
