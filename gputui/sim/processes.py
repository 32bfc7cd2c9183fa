"""Processes that stand for simulated jobs: real stand-ins or supplied facts.

Stand-ins are real child processes, so the agent's ``/proc`` reading and the
kill action are exercised for real; one asked to (``ignore_term``) ignores
SIGTERM, as a job stuck in its cleanup would. For fleets too large for a
process per job, ``SyntheticProcesses`` supplies the facts the agent would
have read, under pids that no real process has; like a real host's, they
come in families: several ranks of one job under one ``torchrun``, a
container's process under its shim, a batch step under ``slurmstepd``, so
that grouping by parent, job or container has something to show.
``AttachedProcesses`` is the
pool of an ``--act`` agent's simulator: it starts nothing, since the host's
streaming agent runs the stand-ins.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from typing import Dict, List, Optional

COMMANDS = (
    ["python", "train.py", "--model", "llama-70b", "--bf16"],
    ["torchrun", "--nproc-per-node", "8", "pretrain.py", "--config", "gpt-neox-20b.yaml"],
    ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "mixtral-8x7b"],
    ["python", "finetune_lora.py", "--base", "mistral-7b", "--epochs", "3"],
    ["jupyter-lab", "--no-browser", "--port", "8888"],
    ["python", "eval_harness.py", "--tasks", "mmlu,gsm8k"],
)
USERS = ("alice", "bkumar", "chen", "dmitri", "esra", "farah", "gpuops")
# (the parent's name, at most how many GPU processes it starts, weight): what starts GPU jobs on a real host.
LAUNCHERS = (("torchrun", 4, 3), ("containerd-shim", 2, 2), ("slurmstepd", 1, 2), ("bash", 1, 1))
JOIN_CHANCE = 0.75  # a new process is another rank of the open family, this often


def package_root() -> str:
    """Folder (or zip) that holds the ``gputui`` package, for the stand-ins' path."""
    here = os.path.abspath(__file__)
    return os.path.dirname(os.path.dirname(os.path.dirname(here)))


class StandInProcesses:
    """Starts, tracks and always cleans up stand-in processes."""

    def __init__(self) -> None:
        self.children: Dict[int, subprocess.Popen] = {}  # type: ignore[type-arg]
        self.env = dict(os.environ, PYTHONPATH=package_root())

    def start(self, command_no: int, ignore_term: bool = False, age_s: float = 0.0) -> int:
        words = COMMANDS[command_no % len(COMMANDS)]
        argv = [sys.executable, "-S", "-m", "gputui.sim.standin", *words]
        env = dict(self.env, GPUTUI_STANDIN_IGNORE_TERM="1") if ignore_term else self.env
        child = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        if child.stdout is not None:
            child.stdout.read(1)  # it has exec'd and runs: a real job would have long ago
            child.stdout.close()
        self.children[child.pid] = child
        return child.pid

    def alive(self, pid: int) -> bool:
        child = self.children.get(pid)
        return child is not None and child.poll() is None

    def stop(self, pid: int) -> None:
        child = self.children.pop(pid, None)
        if child is None:
            return
        if child.stdin is not None:
            try:
                child.stdin.close()  # the stand-in's cue to exit
            except OSError:
                pass
        try:
            child.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def close(self) -> None:
        """All lifelines are cut first, then the stand-ins are awaited together:
        one by one, a loaded machine would make an agent's exit take seconds
        per job."""
        children = list(self.children.values())
        self.children.clear()
        for child in children:
            if child.stdin is not None:
                try:
                    child.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + 2.0
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


class Family:
    """A launcher and the GPU processes it started: they share its user, job, container and command."""

    __slots__ = ("command", "container", "members", "parent_command", "ppid", "size", "slurm_job", "user")

    def __init__(self, ppid: int, parent_command: str, size: int, user: str, command: str) -> None:
        self.ppid = ppid
        self.parent_command = parent_command
        self.size = size  # it starts this many ranks at most
        self.user = user
        self.command = command
        self.slurm_job: Optional[str] = None
        self.container: Optional[str] = None
        self.members: List[int] = []


class SyntheticProcesses:
    """Process facts supplied directly, for fleets too large for real processes."""

    PID_BASE = 4_000_000  # above any default pid_max: never a real process

    def __init__(self, seed: int, host_no: int = 0) -> None:
        self.rng = random.Random(seed * 7919 + 17)
        self.next_pid = self.PID_BASE + (host_no % 1000) * 1000
        self.facts: Dict[int, Dict[str, object]] = {}
        self.family_rng = random.Random(seed * 7919 + 29)
        self.families: Dict[int, Family] = {}  # by the launcher's pid
        self.boot = time.time() - 86400 * 3

    def start(self, command_no: int, ignore_term: bool = False, age_s: float = 0.0) -> int:
        pid = self.next_pid
        self.next_pid += 1
        words = COMMANDS[command_no % len(COMMANDS)]
        user = USERS[self.rng.randrange(len(USERS))]
        slurm = str(self.rng.randrange(100000, 999999)) if self.rng.random() < 0.6 else None
        rss_mib = round(self.rng.uniform(1500.0, 24000.0), 1)
        family = self._family(user, " ".join(words), slurm)
        family.members.append(pid)
        self.facts[pid] = {
            "pid": pid,
            "ppid": family.ppid,
            "parent_command": family.parent_command,
            "user": family.user,
            "command": family.command,
            "cpu_pct": None,
            "rss_mib": rss_mib,
            # A job found running when the host was first looked at started before that.
            "started_at": round(time.time() - age_s, 2),
            "slurm_job": family.slurm_job,
            "container": family.container,
        }
        return pid

    def _family(self, user: str, command: str, slurm_job: Optional[str]) -> "Family":
        """The parent a new process runs under: the open family's launcher (the
        process is its next rank, with its user, job and command), or a new one.

        The choices come from a random stream of their own, so each process's
        other facts are those the same seed always gave."""
        open_ = [f for f in self.families.values() if len(f.members) < f.size]
        if open_ and self.family_rng.random() < JOIN_CHANCE:
            return open_[-1]
        name = self.family_rng.choices([n for n, _, _ in LAUNCHERS], [w for _, _, w in LAUNCHERS])[0]
        size = next(most for n, most, _ in LAUNCHERS if n == name)
        container = None
        if name == "slurmstepd" and slurm_job is None:
            name = "bash"  # a batch step needs a job
        elif name == "containerd-shim":
            container, slurm_job = "%012x" % self.family_rng.getrandbits(48), None
        family = Family(self.next_pid, name, size, user, command)
        family.slurm_job, family.container = slurm_job, container
        self.next_pid += 1
        self.families[family.ppid] = family
        return family

    def alive(self, pid: int) -> bool:
        return pid in self.facts

    def stop(self, pid: int) -> None:
        """A family whose every rank has ended is gone with them (its launcher exits)."""
        self.facts.pop(pid, None)
        for ppid, family in list(self.families.items()):
            if pid in family.members:
                family.members.remove(pid)
                if not family.members:
                    del self.families[ppid]

    def close(self) -> None:
        self.facts.clear()
        self.families.clear()

    def describe(self, pid: int, now: float) -> Optional[Dict[str, object]]:
        facts = self.facts.get(pid)
        if facts is None:
            return None
        out = dict(facts)
        out["cpu_pct"] = round(self.rng.uniform(85.0, 101.0), 1)
        return out


class AttachedProcesses:
    """Starts nothing: an ``--act`` agent lists the streaming agent's processes."""

    def start(self, command_no: int, ignore_term: bool = False, age_s: float = 0.0) -> int:
        raise RuntimeError("an attached simulator does not start processes")

    def alive(self, pid: int) -> bool:
        return False

    def stop(self, pid: int) -> None:
        pass

    def close(self) -> None:
        pass
