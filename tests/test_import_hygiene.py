"""The layers stay apart: the agent runs on a GPU host with the stdlib and
pynvml only, and the command-line tools for cron and monitoring (`gputui
check`, `gputui snapshot`, the actions) start without loading the UI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize("module", ["gputui.agent.main", "gputui.agent.act_main", "gputui.agent.exporter", "gputui.sim.nvml"])
def test_the_agent_needs_nothing_but_the_stdlib_and_pynvml(module: str) -> None:
    third_party = loaded_after(module) & {"pydantic", "textual", "rich", "asyncssh", "psutil", "plotext", "tomli_w"}
    assert third_party == set(), f"{module} loads {third_party}: a GPU host would need them installed"


@pytest.mark.parametrize("module", ["gputui.health.check_cli", "gputui.snapshot", "gputui.actions.cli", "gputui.record.cli"])
def test_command_line_tools_do_not_load_the_ui(module: str) -> None:
    assert "textual" not in loaded_after(module), f"{module} loads Textual"
