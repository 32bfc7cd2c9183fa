"""What an action needs to know about this host: its GPUs as NVML sees them,
the processes on them, and how to run an external command safely.

GPU references are resolved against NVML (index or UUID), never trusted;
the processes an action would touch are described from ``/proc`` with the
same reader the streaming agent uses. External commands run from argument
lists, never through a shell, so a reason full of quotes or ``$()`` is only
ever text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from gputui.agent.act_request import Refused
from gputui.agent.nvml_calls import text
from gputui.agent.procfs import ProcReader

COMPUTE_MODE_NAMES = {0: "DEFAULT", 1: "EXCLUSIVE_THREAD", 2: "PROHIBITED", 3: "EXCLUSIVE_PROCESS"}


class Gpu:
    __slots__ = ("error", "handle", "index", "uuid")

    def __init__(self, index: int, handle: Any, uuid: Optional[str], error: Optional[str]) -> None:
        self.index = index
        self.handle = handle
        self.uuid = uuid
        self.error = error

    def label(self) -> str:
        return "GPU %d (%s)" % (self.index, self.uuid)


def pid_start(pid: int, proc: str = "/proc") -> Optional[int]:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or ``None`` if gone.

    Together with the pid it names one process: a pid reused by a new process
    has another start time.
    """
    try:
        with open("%s/%d/stat" % (proc, pid), "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def pid_state(pid: int, proc: str = "/proc") -> Optional[str]:
    """Field 3 of /proc/PID/stat (R, S, D, Z, ...), or ``None`` if gone."""
    try:
        with open("%s/%d/stat" % (proc, pid), "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


class HostGpus:
    """This host's GPUs through NVML (real or simulated), for one request."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        nvml.nvmlInit()
        self.gpus: List[Gpu] = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            try:
                self.gpus.append(Gpu(i, handle, text(nvml.nvmlDeviceGetUUID(handle)), None))
            except nvml.NVMLError as exc:
                self.gpus.append(Gpu(i, handle, None, "NVML cannot reach it: %s" % exc))
        self.procs = ProcReader()

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass

    def resolve(self, refs: Sequence[str]) -> List[Gpu]:
        """GPUs named by index or UUID, in order, once each; refused if any is unknown or lost."""
        out: List[Gpu] = []
        for ref in refs:
            gpu = next((g for g in self.gpus if ref in (str(g.index), g.uuid)), None)
            if gpu is None:
                have = "0-%d" % (len(self.gpus) - 1) if self.gpus else "none"
                raise Refused("no GPU %r on this host (GPU indices %s, or a UUID)" % (ref, have))
            if gpu.error is not None:
                raise Refused("GPU %d: %s" % (gpu.index, gpu.error))
            if gpu not in out:
                out.append(gpu)
        return out

    def processes(self, gpu: Gpu) -> List[int]:
        if gpu.error is not None:
            return []
        try:
            return [int(p.pid) for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)]
        except self.nvml.NVMLError:
            return []

    def compute_mode(self, gpu: Gpu) -> int:
        return int(self.nvml.nvmlDeviceGetComputeMode(gpu.handle))

    def affected(self, gpus: Sequence[Gpu]) -> List[Dict[str, Any]]:
        """The processes on ``gpus``: who runs what, under which Slurm job."""
        out = []
        for gpu in gpus:
            for pid in self.processes(gpu):
                out.append(self.describe(gpu, pid))
        return out

    def describe(self, gpu: Gpu, pid: int) -> Dict[str, Any]:
        facts = self.procs.facts(pid, time.monotonic()) or {}
        return {
            "gpu": gpu.index,
            "uuid": gpu.uuid,
            "pid": pid,
            "pid_start": pid_start(pid),
            "user": facts.get("user"),
            "command": facts.get("command"),
            "job": facts.get("slurm_job"),
        }


def mode_name(mode: Optional[int]) -> str:
    return "unknown" if mode is None else COMPUTE_MODE_NAMES.get(mode, str(mode))


def run_command(argv: List[str], timeout: float = 30.0) -> Tuple[bool, str]:
    """Run ``argv`` (no shell); ``(ok, what it said)``: stderr verbatim when it failed."""
    if shutil.which(argv[0]) is None:
        return False, "%s is not installed (not found on PATH)" % argv[0]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, "%s did not finish within %g s" % (argv[0], timeout)
    except OSError as exc:
        return False, "cannot run %s: %s" % (argv[0], exc.strerror)
    err = done.stderr.decode("utf-8", "replace").strip()
    out = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        return False, err or out or "%s exited with status %d" % (argv[0], done.returncode)
    return True, out


def syslog(line: str) -> Optional[str]:
    """One line to syslog through ``logger``; why not, when it could not be sent."""
    ok, said = run_command(["logger", "-t", "gputui", "--", line], timeout=5.0)
    return None if ok else "not logged to syslog: %s" % said


def am_root() -> bool:
    return os.geteuid() == 0
