"""The simulated driver's state, shared by the processes of one simulated host.

On a real host two processes (the streaming agent and an ``--act`` agent)
see one driver: a compute mode set by one is read by the other, and both
list the same GPU processes. Simulated hosts get the same through
``<state-dir>/sim-driver-<host>.json``: compute modes by GPU UUID, written
by whoever sets one, and the processes on each GPU, written by each
streaming agent's simulator that runs stand-ins, under its own pid: a second
agent of the same host (a ``snapshot`` next to the dashboard's) adds its
list and takes back only its own, and the list of an agent that died
unannounced is dropped once its pid is gone. Writes are atomic and
under ``flock``; reads are cached by the file's identity, so asking every
sample costs one ``stat``.

It also holds what the driver's kernel log would: when the host booted and
the XIDs already logged, so that a restarted agent reads the same history.
``pending_xids`` is how a test (or an operator trying the dashboard) makes
an XID happen on a running simulated host: :meth:`DriverState.push_xid`
appends one, and the streaming agent's event wait takes it, once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

Procs = Dict[str, List[Dict[str, int]]]
MAX_LOGGED_XIDS = 200


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ValueError:
        return False
    except PermissionError:  # another user's: alive
        return True
    except OSError:
        return False
    return True


class DriverState:
    def __init__(self, state_dir: str, host: str) -> None:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", host) or "_"
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "sim-driver-%s.json" % name)
        self.lock_path = os.path.join(state_dir, "sim-driver-%s.lock" % name)
        self._key: Optional[Tuple[int, int, int]] = None
        self._data: Dict[str, Any] = {}

    def read(self) -> Dict[str, Any]:
        """The state as last written; ``{}`` when there is none (or it is unreadable)."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._key, self._data = None, {}
            return self._data
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            try:
                with open(self.path, "rb") as f:
                    data = json.loads(f.read().decode("utf-8"))
                self._data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._data = {}
            self._key = key
        return self._data

    def compute_mode(self, uuid: str) -> int:
        mode = self.read().get("compute_modes", {}).get(uuid, 0)
        return mode if isinstance(mode, int) else 0

    def processes(self, uuid: str) -> List[Dict[str, int]]:
        """The processes every live streaming agent runs on GPU ``uuid``."""
        out: List[Dict[str, int]] = []
        for writer, procs in self.read().get("processes_by", {}).items():
            if isinstance(procs, dict) and _alive(writer):
                out.extend(p for p in procs.get(uuid, []) if isinstance(p, dict) and isinstance(p.get("pid"), int))
        return out

    @contextlib.contextmanager
    def _update(self) -> Iterator[Dict[str, Any]]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._key = None  # read afresh under the lock
            data = dict(self.read())
            yield data
            tmp = "%s.tmp-%d" % (self.path, os.getpid())
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, sort_keys=True)
            os.replace(tmp, self.path)
        finally:
            os.close(fd)

    def set_compute_mode(self, uuid: str, mode: int) -> None:
        with self._update() as data:
            modes = dict(data.get("compute_modes", {}))
            modes[uuid] = int(mode)
            data["compute_modes"] = modes

    def set_processes(self, procs: Procs) -> None:
        """This process's stand-ins (none: it is leaving), beside the others'."""
        with self._update() as data:
            by = {w: p for w, p in dict(data.get("processes_by", {})).items() if _alive(w)}
            if procs:
                by[str(os.getpid())] = procs
            else:
                by.pop(str(os.getpid()), None)
            data["processes_by"] = by

    def push_xid(self, gpu: int, xid: int) -> None:
        """Make XID ``xid`` happen on GPU index ``gpu`` of the running host."""
        with self._update() as data:
            data["pending_xids"] = [*list(data.get("pending_xids", [])), {"gpu": int(gpu), "xid": int(xid)}]

    def has_pending_xids(self) -> bool:
        return bool(self.read().get("pending_xids"))

    def take_xids(self) -> List[Dict[str, int]]:
        """The pending XIDs, removed as they are taken, so that each happens once."""
        with self._update() as data:
            pending = data.pop("pending_xids", [])
        return [x for x in pending if isinstance(x, dict) and isinstance(x.get("gpu"), int) and isinstance(x.get("xid"), int)]

    def log_xid(self, entry: Dict[str, Any]) -> None:
        """Record an XID as the kernel log would, for agents started later."""
        with self._update() as data:
            data["kernel_xids"] = ([*list(data.get("kernel_xids", [])), entry])[-MAX_LOGGED_XIDS:]

    def logged_xids(self) -> List[Dict[str, Any]]:
        return [x for x in self.read().get("kernel_xids", []) if isinstance(x, dict)]

    def booted_at(self, default: float) -> float:
        """When the simulated host booted: ``default`` the first time asked."""
        booted = self.read().get("booted_at")
        if isinstance(booted, (int, float)):
            return float(booted)
        with self._update() as data:
            if not isinstance(data.get("booted_at"), (int, float)):
                data["booted_at"] = default
            return float(data["booted_at"])
