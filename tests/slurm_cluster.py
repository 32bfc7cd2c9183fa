"""A real Slurm controller for the tests: slurmctld, munged and slurmd per node.

Everything lives in a private directory under /tmp (``gt-slurm-*``): slurm.conf,
a munge key made for the run, munged's socket, slurmctld's state, logs and pid
files. Nothing under /etc is read or written, and the system's munged (if any)
is left alone: ``AuthInfo=socket=...`` points Slurm at ours.

With an :class:`~tests.sshfleet.SshFleet` that has namespaces, slurmctld runs in
the jump host's namespace on 10.231.1.1 (its bridge address, which every GPU
host reaches) and a slurmd runs in each test node's namespace, so nodes
register and are really IDLE. munged stays in the root namespace: its socket
is a path on the shared filesystem, which works from any network namespace.
The root namespace has no route to 10.231.1.1, so :meth:`SlurmCluster.scontrol`
runs in the controller's namespace unless told otherwise.

Without namespaces (no fleet, or a loopback fleet) slurmctld listens on
127.0.0.1 on free ports and no slurmd runs (several slurmd on one address need
a multiple-slurmd build; not attempted): nodes never register. Slurm reports
them as ``UNKNOWN``; DRAIN makes that ``UNKNOWN+DRAIN``, and RESUME then exits 1
("Invalid node state specified") yet clears DRAIN (``UNKNOWN+NOT_RESPONDING``).

Usage (start the fleet first; one cluster per fleet, as the controller's
ports are fixed inside the jump host's namespace)::

    fleet = SshFleet(tmp)
    fleet.start()
    try:
        with SlurmCluster(fleet) as slurm:  # restarts the fleet's sshd with SetEnv SLURM_CONF=...
            slurm.scontrol("update", "NodeName=gt-a", "State=DRAIN", "Reason=hot", host="gt-a")
            assert slurm.node_state("gt-a") == "IDLE+DRAIN"
            assert slurm.node_reason("gt-a") == "hot"
            slurm.scontrol("update", "NodeName=gt-a", "State=RESUME", host="gt-a")
            slurm.wait_state("gt-a", "IDLE")  # via "IDLE+NOT_RESPONDING" for about a second
    finally:
        fleet.stop()

What scontrol does with Reason= (22.05, argv without a shell): the text is kept
as given (quotes, ``;``, ``$(...)``, tabs, non-ASCII, 70,000 characters, newlines)
except that one leading and one trailing double quote are each cut off
(``say "hi"`` is shown as ``say "hi``); an empty reason is refused.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

from tests.sshfleet import SshFleet, free_port

SLURMCTLD = shutil.which("slurmctld") or "/usr/sbin/slurmctld"
SLURMD = shutil.which("slurmd") or "/usr/sbin/slurmd"
MUNGED = shutil.which("munged") or "/usr/sbin/munged"
SCONTROL = shutil.which("scontrol") or "/usr/bin/scontrol"
DIR_PREFIX = "gt-slurm-"
CREATE_LOCK = "/run/gputui-slurm.lock"
CONTROLLER_ADDRESS = "10.231.1.1"  # the jump host's bridge: every GPU host's subnet
DEFAULT_NODES = ("gt-a", "gt-b", "gt-c")

# `scontrol show node` prints the reason as "Reason=<text> [<user>@<YYYY-MM-DDTHH:MM:SS>]";
# a reason with newlines prints its first line there and each later line on its own
# line, indented by 10 spaces (empty lines are dropped by Slurm's strtok).
_REASON_SUFFIX = re.compile(r" \[[^\[\]@]*@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\]$")
_REASON_CONTINUATION = " " * 10


@dataclass(frozen=True)
class NodeInfo:
    """What ``scontrol show node <name>`` says about one node."""

    state: str  # e.g. "IDLE", "IDLE+DRAIN", "UNKNOWN+DRAIN+NOT_RESPONDING"
    reason: str | None  # the text given to Reason=, without Slurm's " [user@time]"
    reason_by: str | None  # "root@2026-11-28T17:53:43": who set it, and when
    raw: str

    @property
    def flags(self) -> set[str]:
        """The state's parts: {"IDLE", "DRAIN"} for "IDLE+DRAIN"."""
        return set(self.state.split("+"))


class SlurmCluster:
    def __init__(self, fleet: SshFleet | None = None, nodes: Sequence[str] = DEFAULT_NODES, slurmd: bool = True,
                 sshd_env: bool = True, start_timeout: float = 30.0, gpus: int = 0,
                 loopback_node: str | None = None) -> None:  # fmt: skip
        """``fleet`` must be started first. ``slurmd``: run a slurmd per node (only
        with namespaces). ``sshd_env``: restart the fleet's sshd with SLURM_CONF in
        their SetEnv, so SSH sessions (the product's agent) find this cluster.
        ``gpus``: each node has that many GPUs as Slurm GRES, backed by stand-in
        device files (see :meth:`_write_gres`). ``loopback_node``: without
        namespaces, run one slurmd on 127.0.0.1 for that node (on a port of its
        own), so it registers and runs jobs; the other nodes stay UNKNOWN."""
        self.fleet = fleet
        self.nodes = list(nodes)
        self.want_slurmd = slurmd
        self.gpus = gpus
        self.loopback_node = loopback_node
        self.loopback_port = free_port() if loopback_node is not None else 0
        self.sshd_env = sshd_env
        self.start_timeout = start_timeout
        self.root = Path()
        self.controller_ns: str | None = None
        self.address = "127.0.0.1"
        self.ctld_port = 6817
        self.slurmd_port = 6818
        self.munged: subprocess.Popen[bytes] | None = None
        self.slurmctld: subprocess.Popen[bytes] | None = None
        self.slurmds: dict[str, subprocess.Popen[bytes]] = {}
        self.started_s = 0.0  # how long start() took
        self._owner: TextIO | None = None
        self._logs: list[TextIO] = []
        self._sshd_patched = False

    # -- paths ------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge.sock"

    def env(self) -> dict[str, str]:
        """This process's environment plus SLURM_CONF for this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf_path)}

    @property
    def namespaces(self) -> bool:
        return self.controller_ns is not None

    # -- bring-up ---------------------------------------------------------------
    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the Slurm cluster needs root (munged, slurmctld); run `make test` as root")
        for tool in (SLURMCTLD, MUNGED, SCONTROL):
            if not Path(tool).exists():
                raise RuntimeError(f"{tool} is not installed; `make system-deps` as root installs slurmctld, slurmd, munge")
        began = time.monotonic()
        try:
            self._make_root()
            fleet = self.fleet
            if fleet is not None and fleet.namespaces:
                jump = fleet.hosts["gt-jump"]
                self.controller_ns, self.address = jump.namespace, CONTROLLER_ADDRESS
            else:
                self.ctld_port, self.slurmd_port = free_port(), free_port()
            self._write_conf()
            self._start_munged()
            self._start_slurmctld()
            if self.want_slurmd and self.namespaces:
                for node in self.nodes:
                    self._start_slurmd(node)
                self._wait_nodes_idle()
            elif self.loopback_node is not None:
                self._start_slurmd(self.loopback_node)
                self._wait_nodes_idle()
            if self.sshd_env and fleet is not None:
                self._patch_sshd(fleet)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - began

    def _make_root(self) -> None:
        """A fresh directory, held by a lock for as long as this cluster lives;
        directories whose lock is free were left by a killed run: clear them."""
        with open(CREATE_LOCK, "w") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            sweep_stale()
            self.root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir="/tmp"))
            self._owner = open(self.root / "owner.lock", "w")  # noqa: SIM115 - held until stop()
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.root.chmod(0o755)  # other users reach munged's socket (the unauthorised-user check)
        for sub in ("state", "spool"):
            (self.root / sub).mkdir()

    def _write_conf(self) -> None:
        r = self.root
        lines = [
            "ClusterName=gputui-test",
            f"SlurmctldHost={socket.gethostname().split('.')[0]}({self.address})",  # slurmctld checks its own hostname
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}/%n",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={r / 'slurmctld.log'}",
            f"SlurmdLogFile={r}/slurmd-%n.log",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ReturnToService=2",
            "DefMemPerCPU=10",  # not all of the node's memory: jobs share a node
            "SlurmdParameters=config_overrides",  # the CPUs and GRES below, whatever this machine has
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MailProg=/bin/true",
        ]
        if self.gpus:
            lines.append("GresTypes=gpu")
        for node in self.nodes:
            gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
            port = f" Port={self.loopback_port}" if node == self.loopback_node and not self.namespaces else ""
            lines.append(f"NodeName={node} NodeAddr={self._node_address(node)}{port} CPUs=4 RealMemory=1000{gres} State=UNKNOWN")
        lines.append(f"PartitionName=gpu Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP")
        self.conf_path.write_text("\n".join(lines) + "\n")
        if self.gpus:
            self._write_gres()

    def _write_gres(self) -> None:
        """gres.conf beside slurm.conf, each node's GPUs backed by character
        devices made for the run (major 195 as NVIDIA's, minor = GPU index), as
        a real site lists /dev/nvidia0..N: slurmd checks the files exist, and a
        job's GRES index (``scontrol show job -d``: ``gpu:1(IDX:0)``) is the
        position in that list, so GPU 0 is /dev/nvidia0 as on a real host."""
        lines = ["AutoDetect=off"]
        for node in self.nodes:
            dev = self.root / "dev" / node
            dev.mkdir(parents=True)
            for i in range(self.gpus):
                os.mknod(dev / f"nvidia{i}", 0o600 | stat.S_IFCHR, os.makedev(195, i))
            last = self.gpus - 1
            files = f"{dev}/nvidia[0-{last}]" if last else f"{dev}/nvidia0"
            lines.append(f"NodeName={node} Name=gpu File={files}")
        (self.root / "gres.conf").write_text("\n".join(lines) + "\n")

    def _node_address(self, node: str) -> str:
        if self.fleet is not None and self.namespaces:
            return self.fleet.hosts[node].address
        return "127.0.0.1"

    def _spawn(self, name: str, argv: list[str], ns: str | None = None) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.out", "w")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        if ns:
            argv = in_netns(ns, argv)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env())
        with open(self.root / "spawned.pid", "a") as pids:  # for sweep_stale, should this process die unstopped
            pids.write(f"{proc.pid}\n")
        return proc

    def _start_munged(self) -> None:
        key = self.root / "munge.key"
        subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True, capture_output=True)
        r = self.root
        self.munged = self._spawn("munged", [MUNGED, "--foreground", f"--socket={self.munge_socket}", f"--key-file={key}",
                                             f"--pid-file={r / 'munged.pid'}", f"--seed-file={r / 'munged.seed'}",
                                             f"--log-file={r / 'munged.log'}"])  # fmt: skip
        probe = ["munge", "--no-input", f"--socket={self.munge_socket}"]
        self._poll(lambda: subprocess.run(probe, capture_output=True).returncode == 0, self.munged, "munged")

    def _start_slurmctld(self) -> None:
        self.slurmctld = self._spawn("slurmctld", [SLURMCTLD, "-D", "-f", str(self.conf_path)], self.controller_ns)
        self._poll(self.ping, self.slurmctld, "slurmctld")

    def _start_slurmd(self, node: str) -> None:
        ns = self.fleet.hosts[node].namespace if self.fleet is not None and self.namespaces else None
        (self.root / "spool" / node).mkdir(exist_ok=True)
        self.slurmds[node] = self._spawn(f"slurmd-{node}", [SLURMD, "-D", "-N", node, "-f", str(self.conf_path)], ns)

    def _wait_nodes_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        for node in self.slurmds:
            while self.node_state(node) != "IDLE":
                proc = self.slurmds[node]
                if proc.poll() is not None:
                    raise RuntimeError(f"slurmd for {node} exited {proc.returncode}: {self._tail(f'slurmd-{node}.out')}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node} not IDLE after {self.start_timeout}s: {self.node_state(node)}\n"
                                       f"{self._tail(f'slurmd-{node}.log')}")  # fmt: skip
                time.sleep(0.05)  # poll interval, bounded by the deadline

    def _poll(self, ready: Callable[[], bool], proc: subprocess.Popen[bytes], name: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}: {self._tail(f'{name}.out')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {self.start_timeout}s: {self._tail(f'{name}.out')}")
            time.sleep(0.05)  # poll interval, bounded by the deadline

    def _tail(self, name: str) -> str:
        try:
            return "\n".join((self.root / name).read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def _patch_sshd(self, fleet: SshFleet) -> None:
        """sshd keeps only its first SetEnv line, so add SLURM_CONF to that line
        (gt-nopy has one) or add a line; then restart each sshd to read it."""
        for host in list(fleet.hosts.values()):
            if host.process is None or host.name.endswith("-slow"):
                continue
            host.extra_config = with_setenv(host.extra_config, f"SLURM_CONF={self.conf_path}")
            fleet.stop_sshd(host)
            fleet.start_sshd(host)
        self._sshd_patched = True

    def _unpatch_sshd(self, fleet: SshFleet) -> None:
        for host in list(fleet.hosts.values()):
            host.extra_config = without_setenv(host.extra_config, "SLURM_CONF")
            if host.process is not None and host.process.poll() is None and not host.name.endswith("-slow"):
                fleet.stop_sshd(host)
                fleet.start_sshd(host)
        self._sshd_patched = False

    # -- asking Slurm -----------------------------------------------------------
    def scontrol(self, *args: str, ns: str | None = None, host: str | None = None, user: str | None = None,
                 timeout: float = 30.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run scontrol with SLURM_CONF set, argv as given (no shell). Where: in
        ``ns``, else in fleet host ``host``'s namespace, else in the controller's
        namespace (the root namespace has no route to it). ``user``: run as that
        user (runuser)."""
        where = ns
        if where is None and host is not None:
            assert self.fleet is not None, "host= needs a fleet"
            where = self.fleet.hosts[host].namespace
        elif where is None:
            where = self.controller_ns
        argv = [SCONTROL, *args]
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        if where:
            argv = in_netns(where, argv)
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=timeout)

    def ping(self) -> bool:
        out = self.scontrol("ping", timeout=10)
        return out.returncode == 0 and "is UP" in out.stdout

    def show_node(self, name: str) -> NodeInfo:
        out = self.scontrol("show", "node", name)
        if out.returncode != 0:
            raise RuntimeError(f"scontrol show node {name}: {out.returncode} {out.stdout}{out.stderr}")
        return parse_show_node(out.stdout)

    def node_state(self, name: str) -> str:
        """Slurm's State= field: base state and flags joined by "+", e.g. "IDLE",
        "IDLE+DRAIN"; a node whose slurmd never registered: "UNKNOWN",
        "UNKNOWN+DRAIN", later "...+NOT_RESPONDING"."""
        return self.show_node(name).state

    def node_reason(self, name: str) -> str | None:
        """The reason exactly as given to ``Reason=`` (None when there is none).
        Slurm shows "Reason=<text> [root@2026-11-28T17:53:43]"; the suffix is cut."""
        return self.show_node(name).reason

    def wait_state(self, name: str, state: str, timeout: float = 10.0) -> None:
        """Poll until the node's State= is exactly ``state``. RESUME passes
        through "IDLE+NOT_RESPONDING" for about a second (Slurm pings the node
        before calling it IDLE), so wait for "IDLE" after a resume."""
        deadline = time.monotonic() + timeout
        while (now := self.node_state(name)) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} is {now}, not {state}, after {timeout}s")
            time.sleep(0.05)  # poll interval, bounded by the deadline

    # -- tear-down ----------------------------------------------------------------
    def stop(self) -> None:
        """Stop what this cluster started (slurmds, slurmctld, munged), restore the
        fleet's sshd, remove the directory. Safe to call twice or after a failed start."""
        if self._sshd_patched and self.fleet is not None:
            try:
                self._unpatch_sshd(self.fleet)
            except Exception:  # the fleet may be half gone already; its stop() cleans up
                self._sshd_patched = False
        for proc in [*self.slurmds.values(), self.slurmctld, self.munged]:
            if proc is not None:
                terminate(proc)
        self.slurmds.clear()
        self.slurmctld = self.munged = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._owner is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self._owner.close()
            self._owner = None


def in_netns(ns: str, argv: list[str]) -> list[str]:
    """argv run in network namespace ``ns`` and nothing else: unlike ``ip netns
    exec``, nsenter keeps this machine's /sys, where slurmd finds the cgroup
    filesystem it insists on (``ip netns exec`` mounts a fresh sysfs without it:
    "No filesystem mounted on /sys/fs/cgroup"). nsenter execs: the pid is argv's."""
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def parse_show_node(text: str) -> NodeInfo:
    state = re.search(r"(?:^|\s)State=(\S+)", text)
    if state is None:
        raise ValueError(f"no State= in: {text!r}")
    reason: str | None = None
    by: str | None = None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("   Reason="):
            first = line[len("   Reason=") :]
            suffix = _REASON_SUFFIX.search(first)
            if suffix is not None:
                by = suffix.group(0)[2:-1]
                first = first[: suffix.start()]
            parts = [first]
            for more in lines[i + 1 :]:
                if not more.startswith(_REASON_CONTINUATION):
                    break
                parts.append(more[len(_REASON_CONTINUATION) :])
            reason = "\n".join(parts)
            break
    return NodeInfo(state=state.group(1), reason=reason, reason_by=by, raw=text)


def with_setenv(config: str, assignment: str) -> str:
    lines = config.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("SetEnv "):
            lines[i] = f"{line} {assignment}"
            return "\n".join(lines) + "\n"
    return config + ("" if not config or config.endswith("\n") else "\n") + f"SetEnv {assignment}\n"


def without_setenv(config: str, name: str) -> str:
    out = []
    for line in config.splitlines():
        if line.startswith("SetEnv "):
            kept = [w for w in line.split()[1:] if not w.startswith(f"{name}=")]
            if not kept:
                continue
            line = "SetEnv " + " ".join(kept)
        out.append(line)
    return "".join(f"{line}\n" for line in out)


def sweep_stale() -> None:
    """Clear directories of clusters whose owner died without stop(): kill the
    daemons their pid files name (only if that process still mentions the
    directory) and remove them. The caller holds CREATE_LOCK."""
    for d in Path("/tmp").glob(f"{DIR_PREFIX}*"):
        lock_path = d / "owner.lock"
        if not lock_path.exists():
            continue
        with open(lock_path) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            for pid_file in d.glob("*.pid"):
                try:
                    pids = [int(word) for word in pid_file.read_text().split()]
                except (OSError, ValueError):
                    continue
                for pid in pids:
                    try:
                        if str(d).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                            os.kill(pid, signal.SIGKILL)
                    except (OSError, ProcessLookupError):
                        pass
        shutil.rmtree(d, ignore_errors=True)
