"""XIDs from the kernel log: the ones that happened before the agent started.

NVML's event API only reports XIDs while someone listens, and the XID that
matters most at 3 a.m. (79, fallen off the bus) is usually older than the
agent. The NVIDIA driver writes every XID to the kernel log, so the agent
reads it once at start: ``journalctl -k`` where it is readable (real
timestamps), else ``dmesg`` (seconds since boot, made absolute with the
boot time in ``/proc/stat``).

The parsing is pure functions over lines, so that it is tested from
fixtures of real driver output; only :func:`read_host_kernel_log` touches
the host, and it runs its commands from argument lists with a timeout.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

MAX_EVENTS = 50  # in all, however many GPUs and kinds
MAX_PER_KIND = 5  # of one XID number on one GPU: the newest
# XIDs a user's program causes (an illegal address, an MMU fault, a timeout):
# a burst of them must not push out a GPU's own fault, so they go first.
APPLICATION_XIDS = frozenset((13, 31, 43, 45, 68))
MAX_TEXT = 200
COMMAND_TIMEOUT_S = 5.0
JOURNAL_ARGV = ["journalctl", "-k", "-o", "short-unix", "--no-pager", "--since", "-24h"]
DMESG_ARGV = ["dmesg"]

# "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, GPU has fallen off the bus."
# Older drivers leave out "PCI:" or pid/name; some add the function (".0").
_XID = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<bus>[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2})(?:\.[0-7])?\): "
    r"(?P<xid>\d+),\s*(?P<rest>.*)$"
)
_PID = re.compile(r"^pid=(?:'?(?P<pid>\d+|<unknown>)'?),\s*")
_NAME = re.compile(r"^name=(?P<name>[^,]*),\s*")
_UNIX = re.compile(r"^(?P<t>\d{9,}(?:\.\d+)?) ")  # journalctl -o short-unix
_DMESG = re.compile(r"^\[\s*(?P<t>\d+\.\d+)\] ")  # dmesg: seconds since boot
_DMESG_T = re.compile(r"^\[(?P<t>\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\] ")  # dmesg -T
_SYSLOG = re.compile(r"^(?P<t>\w{3} [ \d]\d \d\d:\d\d:\d\d) ")  # journalctl short: no year


def bus_key(bus_id: Optional[str]) -> Optional[str]:
    """One spelling for a PCI address: the kernel writes ``0000:3b:00``, NVML
    ``00000000:3B:00.0`` (a wider domain, upper case, the function)."""
    if not bus_id:
        return None
    parts = bus_id.strip().split(".")[0].split(":")
    if len(parts) == 2:
        parts = ["0", *parts]  # NVML's legacy busIdLegacy has no domain
    if len(parts) != 3:
        return None
    try:
        domain, bus, device = (int(p, 16) for p in parts)
    except ValueError:
        return None
    return "%04x:%02x:%02x" % (domain, bus, device)


def line_time(line: str, boot_time: Optional[float], now: float) -> Tuple[Optional[float], str]:
    """When a log line was written (epoch seconds, or None when the line does
    not say in a way that can be made absolute) and the line without its stamp."""
    m = _UNIX.match(line)
    if m:
        return float(m.group("t")), line[m.end() :]
    m = _DMESG.match(line)
    if m:
        since_boot = float(m.group("t"))
        return (None if boot_time is None else boot_time + since_boot), line[m.end() :]
    m = _DMESG_T.match(line)
    if m:
        try:
            return time.mktime(time.strptime(m.group("t"), "%a %b %d %H:%M:%S %Y")), line[m.end() :]
        except ValueError:
            return None, line[m.end() :]
    m = _SYSLOG.match(line)
    if m:
        return _syslog_time(m.group("t"), now), line[m.end() :]
    return None, line


def _syslog_time(stamp: str, now: float) -> Optional[float]:
    """``Nov 28 03:12:01`` in local time; the year is this one unless that
    puts the line in the future (a log read just after New Year)."""
    year = time.localtime(now).tm_year
    for y in (year, year - 1):
        try:
            t = time.mktime(time.strptime("%d %s" % (y, " ".join(stamp.split())), "%Y %b %d %H:%M:%S"))
        except ValueError:
            return None
        if t <= now + 86400:
            return t
    return None


def parse_xid_line(line: str, boot_time: Optional[float] = None, now: Optional[float] = None) -> Optional[Dict[str, Any]]:
    """One kernel-log line to ``{xid, bus, t, pid, text}``, or None for a line
    that is not an XID."""
    if "Xid" not in line:
        return None  # nearly every line: skip the regular expressions
    t, body = line_time(line.rstrip("\n"), boot_time, time.time() if now is None else now)
    m = _XID.search(body)
    if m is None:
        return None
    rest = m.group("rest")
    pid: Optional[int] = None
    pm = _PID.match(rest)
    if pm:
        pid = int(pm.group("pid")) if pm.group("pid").isdigit() else None
        rest = rest[pm.end() :]
        nm = _NAME.match(rest)
        if nm:
            rest = rest[nm.end() :]
    return {
        "xid": int(m.group("xid")),
        "bus": bus_key(m.group("bus")),
        "t": t,
        "pid": pid,
        "text": rest.strip()[:MAX_TEXT] or None,
    }


def parse_xids(lines: Sequence[str], boot_time: Optional[float] = None, now: Optional[float] = None) -> List[Dict[str, Any]]:
    """The XIDs in ``lines``, in the log's order (oldest first), kept by :func:`keep`."""
    now = time.time() if now is None else now
    found = [x for x in (parse_xid_line(line, boot_time, now) for line in lines) if x is not None]
    return keep(found)


def keep(found: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The newest :data:`MAX_PER_KIND` of each XID number on each bus, and of
    those at most :data:`MAX_EVENTS`, the oldest application XIDs dropped
    first, then the oldest others; in the order given."""
    seen: Dict[Tuple[Optional[str], int], int] = {}
    kept: List[int] = []
    for i in range(len(found) - 1, -1, -1):
        kind = (found[i]["bus"], found[i]["xid"])
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= MAX_PER_KIND:
            kept.append(i)
    kept.reverse()
    excess = len(kept) - MAX_EVENTS
    if excess > 0:
        app = [i for i in kept if found[i]["xid"] in APPLICATION_XIDS]
        other = [i for i in kept if found[i]["xid"] not in APPLICATION_XIDS]
        dropped = set(app[:excess])
        dropped.update(other[: excess - len(dropped)])
        kept = [i for i in kept if i not in dropped]
    return [found[i] for i in kept]


def gpu_for_bus(buses: Sequence[Optional[str]]) -> Dict[str, int]:
    """Bus key -> GPU index, from NVML's bus id of each GPU (by index)."""
    return {key: i for i, key in enumerate(bus_key(b) for b in buses) if key is not None}


def infer_lost(bus: Optional[str], buses: Sequence[Optional[str]]) -> Optional[int]:
    """The GPU index of a bus id NVML no longer answers for.

    A GPU that fell off the bus answers GPU_IS_LOST to every query, its bus
    id included, yet it keeps its index. NVML numbers GPUs in PCI bus order,
    so a kernel bus id that falls between two known neighbours, with exactly
    one unknown index between them, is that GPU; anything less certain stays
    unassigned.
    """
    if bus is None:
        return None
    keys = [bus_key(b) for b in buses]
    below = [i for i, k in enumerate(keys) if k is not None and k < bus]
    above = [i for i, k in enumerate(keys) if k is not None and k > bus]
    lo = max(below) if below else -1
    hi = min(above) if above else len(keys)
    gap = [i for i in range(lo + 1, hi) if keys[i] is None]
    return gap[0] if len(gap) == 1 else None


def to_events(found: Sequence[Dict[str, Any]], buses: Sequence[Optional[str]], now: float) -> List[Dict[str, Any]]:
    """Parsed XIDs to frame events (``source="kernel"``); a line whose time is
    unknown gets ``now`` rather than being dropped."""
    index = gpu_for_bus(buses)
    out = []
    for x in found:
        gpu = index.get(x["bus"]) if x["bus"] is not None else None
        if gpu is None:
            gpu = infer_lost(x["bus"], buses)
        event: Dict[str, Any] = {"xid": x["xid"], "gpu": gpu, "t": round(x["t"] if x["t"] is not None else now, 3)}
        event["source"] = "kernel"
        if x["pid"] is not None:
            event["pid"] = x["pid"]
        if x["text"]:
            event["text"] = x["text"]
        if gpu is None:
            del event["gpu"]
        out.append(event)
    return out


def boot_time_from(stat_text: str) -> Optional[float]:
    """``btime`` from the text of ``/proc/stat``."""
    for line in stat_text.splitlines():
        if line.startswith("btime "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def _run(argv: List[str]) -> Optional[List[str]]:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace").splitlines()


def read_host_kernel_log() -> Tuple[List[str], Optional[float]]:
    """This host's kernel log lines and boot time; empty when neither source
    is readable (journal without the right group, ``dmesg_restrict``)."""
    boot: Optional[float] = None
    try:
        with open("/proc/stat") as f:
            boot = boot_time_from(f.read())
    except OSError:
        pass
    lines = _run(JOURNAL_ARGV)
    if lines and any(_UNIX.match(line) for line in lines):
        return lines, boot
    return _run(DMESG_ARGV) or [], boot
