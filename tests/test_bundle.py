"""The agent runs from its bundle on a bare interpreter: stdlib and pynvml only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gputui.frames import Hello, Sample, parse_frame
from gputui.transport import bundle
from tests.waiting import wait_until_gone

# The interpreter the venv was made from: with -I -S it sees no site-packages at all.
BARE = [getattr(sys, "_base_executable", sys.executable), "-I", "-S"]


def test_bare_interpreter_lacks_the_dashboard_packages() -> None:
    for module in ("textual", "pydantic", "asyncssh", "pynvml"):
        result = subprocess.run([*BARE, "-c", f"import {module}"], capture_output=True, timeout=30)
        assert result.returncode != 0, f"{module} is importable by the bare interpreter"


def test_agent_runs_from_the_bundle_on_a_bare_interpreter(tmp_path: Path) -> None:
    zip_path = tmp_path / "gputui-agent.zip"
    bundle.write(zip_path)
    out = subprocess.run(
        [*BARE, str(zip_path), "--sim", "healthy", "--once"], capture_output=True, text=True, timeout=60, check=True
    )
    frames = [parse_frame(line) for line in out.stdout.splitlines()]
    assert isinstance(frames[0], Hello) and isinstance(frames[1], Sample)
    assert len(frames[1].gpus) == 8
    procs = [p for g in frames[1].gpus for p in g.processes]
    assert procs and all("gputui.sim.standin" in (p.command or "") for p in procs)
    wait_until_gone([p.pid for p in procs], timeout=10.0)


def test_bundle_bytes_are_reproducible() -> None:
    assert bundle.build() == bundle.build()
