"""Facts about a GPU process from ``/proc``: who, what, how much, which job.

NVML only gives a pid and its GPU memory. Everything an operator needs to
act on (user, command, CPU, RSS, start time, Slurm job or container) comes
from ``/proc/PID``, read here with the standard library so that the agent
needs nothing installed. A process can exit between NVML's answer and these
reads; it is then reported as gone (``None``), never as an exception.
"""

from __future__ import annotations

import os
import pwd
import re
import time
from typing import Dict, Optional, Tuple

_SLURM_JOB = re.compile(r"/job_(\d+)(?:/|$)")
# docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, /docker/<id>,
# containerd's systemd driver (...slice:cri-containerd:<id>) and Kubernetes' cgroupfs driver
# (/kubepods/besteffort/pod<uid>/<id>). A conmon scope (libpod-conmon-<id>) is not the container.
_CONTAINER = re.compile(r"(?:(?:docker|containerd|crio|libpod)[-/:]|/kubepods/(?:[a-z]+/)?pod[0-9a-f_-]+/)([0-9a-f]{64})")

Facts = Dict[str, object]
SETTLED_S = 5.0
_FACT_KEYS = ("pid", "ppid", "parent_command", "user", "command", "cpu_pct", "rss_mib", "started_at", "slurm_job", "container")


def parse_cgroup(text: str) -> Tuple[Optional[str], Optional[str]]:
    """Slurm job id and container id (shortened to 12) from /proc/PID/cgroup."""
    job = None
    container = None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if job is None:
            m = _SLURM_JOB.search(path)
            if m:
                job = m.group(1)
        if container is None:
            m = _CONTAINER.search(path)
            if m:
                container = m.group(1)[:12]
    return job, container


class ProcReader:
    """Reads process facts; keeps each pid's last CPU time to give CPU %."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
        self.boot_time = self._boot_time()
        self._cpu: Dict[int, Tuple[float, float]] = {}
        self._users: Dict[int, str] = {}
        self._fixed: Dict[int, Tuple[int, Facts]] = {}
        self._parents: Dict[int, Tuple[int, Optional[str]]] = {}  # pid: (its parent, the parent's comm)

    def _boot_time(self) -> float:
        try:
            with open(os.path.join(self.proc, "stat")) as f:
                for line in f:
                    if line.startswith("btime "):
                        return float(line.split()[1])
        except OSError:
            pass
        return 0.0

    def _user(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    def facts(self, pid: int, now: float) -> Optional[Facts]:
        """Facts for ``pid``, or ``None`` if it is gone.

        Only ``stat`` and ``statm`` change while a process lives; its user,
        command line and cgroup are read once per (pid, start time), once it
        is a few seconds old. Where
        /proc hides other users' processes (``hidepid``), the pid is still
        reported, with what cannot be read as null: GPU memory held by
        "nobody" would be worse.
        """
        base = os.path.join(self.proc, str(pid))
        try:
            with open(base + "/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            with open(base + "/statm") as f:
                statm = f.read().split()
        except PermissionError:
            return dict(dict.fromkeys(_FACT_KEYS), pid=pid)
        except OSError:  # gone (ENOENT, ESRCH) or unreadable
            self._cpu.pop(pid, None)
            return None
        # comm may contain spaces and parentheses: split after the last ')'.
        rest = stat[stat.rfind(")") + 2 :].split()
        ppid, utime, stime = int(rest[1]), int(rest[11]), int(rest[12])
        start_ticks = int(rest[19])
        started_at = self.boot_time + start_ticks / self.ticks
        fixed = self._fixed.get(pid)
        if fixed is None or fixed[0] != start_ticks:  # new, or a new process under a reused pid
            fixed = (start_ticks, self._fixed_facts(base, stat))
            # A young process may not have exec'd yet, or been moved into its job's
            # cgroup: read it again until it has settled.
            if time.time() - started_at >= SETTLED_S:
                self._fixed[pid] = fixed
        cpu_s = (utime + stime) / self.ticks
        prev = self._cpu.get(pid)
        self._cpu[pid] = (now, cpu_s)
        cpu_pct = None
        if prev is not None and now > prev[0]:
            cpu_pct = round(100.0 * (cpu_s - prev[1]) / (now - prev[0]), 1)
        out = dict(fixed[1])
        out.update(
            pid=pid,
            ppid=ppid,
            parent_command=self._parent_command(pid, ppid),
            cpu_pct=cpu_pct,
            rss_mib=round(int(statm[1]) * self.page_kib / 1024.0, 1),
            started_at=round(started_at, 2),
        )
        return out

    def _parent_command(self, pid: int, ppid: int) -> Optional[str]:
        """The parent's name (its ``comm``: "torchrun", "slurmstepd", "containerd-shim"),
        read again only when the process is re-parented (its parent exited)."""
        kept = self._parents.get(pid)
        if kept is not None and kept[0] == ppid:
            return kept[1]
        try:
            with open(os.path.join(self.proc, str(ppid), "comm"), "rb") as f:
                comm: Optional[str] = f.read().decode("utf-8", "replace").strip() or None
        except OSError:  # pid 0 (no parent), gone, or hidden
            comm = None
        self._parents[pid] = (ppid, comm)
        return comm

    def _fixed_facts(self, base: str, stat: str) -> Facts:
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        try:
            with open(base + "/cmdline", "rb") as f:
                cmdline = f.read()
            user: Optional[str] = self._user(os.stat(base).st_uid)
        except OSError:
            cmdline, user = b"", None
        args = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
        job = container = None
        try:
            with open(base + "/cgroup") as f:
                job, container = parse_cgroup(f.read())
        except OSError:
            pass
        return {
            "user": user,
            "command": (" ".join(args) if args else "[%s]" % comm)[:256],
            "slurm_job": job,
            "container": container,
        }

    def forget_except(self, live: "set[int]") -> None:
        """Drop what is kept of pids no longer on any GPU."""
        for kept in (self._cpu, self._fixed, self._parents):
            for pid in list(kept):
                if pid not in live:
                    del kept[pid]
