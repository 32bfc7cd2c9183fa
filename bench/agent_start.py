"""Agent start time: wall time of a one-shot agent (``--once``), median of N runs.

Run by hand (``python bench/agent_start.py [--runs N] [--nvitop PATH] [--real]``); not a test.
A one-shot agent is what a cron job, a health check or a first look at a host
runs, and what nvitop's ``nvitop -1`` is compared against: its cost is mostly
the interpreter starting and importing the agent, so it is measured as a whole
process, start to exit, the way a shell runs it. Each case runs the simulator
(8 GPUs, supplied process facts), so the figures hold on a machine without a
GPU; NVML's own start on real GPUs comes on top of every case alike.

The cases: the bare interpreter and a one-shot ``import pynvml`` (the floor);
``gputui agent`` from the console script and ``python -m gputui.agent``; the
bundle as ``python3 agent.zip`` runs it (first start with an empty cache, later
starts, and with no cache it can write); and the bundle's unpacked folder as the
SSH transport runs it (first start, before Python has cached the compiled
modules there, and later). The runs take turns, case after case, so that a
neighbour's load falls on every case alike.

With ``--real`` the agents read the machine's GPUs through NVML instead, and
only the steady cases run (later starts, not first ones): the comparison
with ``nvitop -1`` that matters, on a GPU machine, where both pay NVML's
start (bench/gpu_machine.sh runs it so). ``gputui agent`` is timed only where
a ``gputui`` console script sits beside this interpreter (an installed venv).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gputui.transport import bundle

AGENT_ARGS = ["--once", "--sim", "healthy", "--sim-processes", "synthetic", "--host-name", "bench"]
REAL_ARGS = ["--once", "--host-name", "bench"]  # the machine's own GPUs
# The interpreter the venv was made from, with no site-packages: what a GPU host's python3 is to the bundle.
BARE = [getattr(sys, "_base_executable", sys.executable), "-I", "-S"]


@dataclass
class Case:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # Run before each timed run, outside the timing: what makes a run a first start.
    prepare: Callable[[], None] = lambda: None
    times: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # why each failed run failed (its time is not kept)


def wipe(folder: Path) -> Callable[[], None]:
    """An empty ``folder`` before each run: the bundle's cache as a host has it before the first start."""

    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    return prepare


def fresh_unpack(data: bytes, folder: Path) -> Callable[[], None]:
    """The bundle unpacked anew (no ``__pycache__``) before each run, as the SSH transport leaves it after an upload."""

    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        zipfile.ZipFile(io.BytesIO(data)).extractall(folder)

    return prepare


def cases(work: Path, nvitop: str | None, real: bool = False) -> list[Case]:
    state = ["--state-dir", str(work / "state")]
    agent_args = REAL_ARGS if real else AGENT_ARGS
    zip_path = work / "agent.zip"
    data = bundle.build()
    zip_path.write_bytes(data)
    unpacked = work / f"agent-{bundle.digest(data)}"
    fresh_unpack(data, unpacked)()
    warm = work / "warm-cache"
    warm.mkdir()
    blocked = work / "not-a-folder"
    blocked.write_text("a file where the cache would go: no cache can be written\n")
    gputui = str(Path(sys.executable).parent / "gputui")
    found = [
        Case("python3 -c pass (bare interpreter)", [*BARE, "-c", "pass"]),
        Case("python -c pass (this venv)", [sys.executable, "-c", "pass"]),
        Case("python -c 'import pynvml'", [sys.executable, "-c", "import pynvml"]),
        Case("gputui agent --once", [gputui, "agent", *agent_args, *state]),
        Case("python -m gputui.agent --once", [sys.executable, "-m", "gputui.agent", *agent_args, *state]),
        Case(
            "python3 agent.zip --once, first start",
            [*BARE, str(zip_path), *agent_args, *state],
            {"XDG_CACHE_HOME": str(work / "cold-cache")},
            wipe(work / "cold-cache"),
        ),
        Case(
            "python3 agent.zip --once, later starts",
            [*BARE, str(zip_path), *agent_args, *state],
            {"XDG_CACHE_HOME": str(warm)},
        ),
        Case(
            "python3 agent.zip --once, no writable cache",
            [*BARE, str(zip_path), *agent_args, *state],
            {"XDG_CACHE_HOME": str(blocked / "cache")},
        ),
        Case(
            "SSH: python3 agent-<hash>/ --once, first start",
            [*BARE, str(unpacked), *agent_args, *state],
            prepare=fresh_unpack(data, unpacked),
        ),
        Case("SSH: python3 agent-<hash>/ --once, later starts", [*BARE, str(work / "ssh-warm"), *agent_args, *state]),
    ]
    shutil.copytree(unpacked, work / "ssh-warm")
    if real:  # the steady cases only, and the console script where there is one
        steady = (
            "python3 -c",
            "python -c",
            "gputui agent",
            "python -m",
            "python3 agent.zip --once, later",
            "SSH: python3 agent-<hash>/ --once, later",
        )
        found = [c for c in found if c.name.startswith(steady)]
    if not Path(gputui).exists():
        print(f"no console script at {gputui}: `gputui agent --once` left out")
        found = [c for c in found if not c.name.startswith("gputui agent")]
    if nvitop:
        found.append(Case("nvitop -1", [nvitop, "-1"]))
    return found


def run_once(case: Case, work: Path) -> None:
    """One timed run; a run that fails (or cannot start) is counted and said, never timed: a
    command that stops at its first error would look fast (nvitop without NVML does)."""
    case.prepare()
    env = {**os.environ, **case.env}
    t0 = time.perf_counter()
    try:
        # From the work folder: `python -m` would import a checkout in the current folder before the installed package.
        result = subprocess.run(case.argv, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        case.failed.append(f"cannot start: {exc}")
        return
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip().splitlines()
        case.failed.append(f"exit status {result.returncode}: {said[-1] if said else 'nothing on stderr'}")
        return
    case.times.append(elapsed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=21, help="timed runs of each case (default 21)")
    p.add_argument("--nvitop", help="an nvitop executable to time as `nvitop -1` too")
    p.add_argument("--real", action="store_true", help="the machine's GPUs through NVML, not the simulator; steady cases only")
    p.add_argument(
        "--budget-s", type=float, default=None, help="start no round after this many seconds (fewer runs, a whole table)"
    )
    args = p.parse_args()
    started = time.monotonic()
    rounds = 0
    with tempfile.TemporaryDirectory(prefix="gputui-agent-start-") as tmp:
        work = Path(tmp)
        found = cases(work, args.nvitop, args.real)
        for case in found:  # one untimed run each: later starts are later starts, and the disk cache is warm
            run_once(case, work)
            case.times.clear()
            case.failed.clear()
        while rounds < args.runs and (args.budget_s is None or time.monotonic() - started < args.budget_s):
            for case in found:
                run_once(case, work)
            rounds += 1
    where = "the machine's GPUs (NVML)" if args.real else "8 simulated GPUs"
    print(f"{rounds} runs each, {where}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("| command | median | fastest | slowest | failed |")
    print("| --- | --- | --- | --- | --- |")
    for case in found:
        ms = [1000 * t for t in case.times]
        figures = f"{statistics.median(ms):.0f} ms | {min(ms):.0f} ms | {max(ms):.0f} ms" if ms else "- | - | -"
        print(f"| {case.name} | {figures} | {len(case.failed)} |")
    for case in found:
        if case.failed:
            print(f"{case.name}: {len(case.failed)} runs failed, the first: {case.failed[0]}")
    if any(case.failed for case in found if not case.name.startswith("nvitop")):
        sys.exit(1)


if __name__ == "__main__":
    main()
