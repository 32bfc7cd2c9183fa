"""The per-host ledger: which GPUs are reserved or drained, by whom and why.

It is a small JSON file, ``<state-dir>/ledger-<host>.json``, named by host
because home directories (the fallback state dir) are often shared over NFS.
Writers take ``flock`` on ``ledger-<host>.lock`` around read-modify-write and
replace the file atomically (temporary file in the same folder, fsync,
rename), so a reader never sees half a file and two operators acting at
once are serialised: the second sees the first one's version. A file that
cannot be parsed is never overwritten: it is moved aside and named in the
error, so that whatever it held can still be recovered by hand.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

DEFAULT_STATE_DIR = "/var/lib/gputui"
FALLBACK_STATE_DIR = "~/.local/state/gputui"
HISTORY_MAX = 1000

Ledger = Dict[str, Any]


class LedgerError(Exception):
    """The ledger cannot be used; the message says why and what to do."""


def safe_host(host: str) -> str:
    """A host name fit for a file name (no separators, no surprises)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", host) or "_"


def _writable_dir(path: str) -> Optional[str]:
    """``None`` when ``path`` exists (or could be made) and is writable; else why not."""
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable by uid %d" % os.geteuid()
    return None


def choose_state_dir(explicit: Optional[str]) -> Tuple[str, List[str]]:
    """The state dir to use, and notes on how it was chosen.

    An explicit ``--state-dir`` is used or refused, never replaced: the
    operator named it so that every agent on the host shares one ledger.
    """
    if explicit:
        path = os.path.abspath(os.path.expanduser(explicit))
        why = _writable_dir(path)
        if why is not None:
            raise LedgerError("cannot use state dir %s: %s" % (path, why))
        return path, []
    why = _writable_dir(DEFAULT_STATE_DIR)
    if why is None:
        return DEFAULT_STATE_DIR, []
    fallback = os.path.expanduser(FALLBACK_STATE_DIR)
    why2 = _writable_dir(fallback)
    if why2 is not None:
        raise LedgerError("no usable state dir: %s: %s; %s: %s" % (DEFAULT_STATE_DIR, why, fallback, why2))
    return fallback, ["cannot write %s (%s): using %s" % (DEFAULT_STATE_DIR, why, fallback)]


def existing_state_dir() -> Optional[str]:
    """Where a ledger may already be, without creating anything (streaming agent)."""
    for path in (DEFAULT_STATE_DIR, os.path.expanduser(FALLBACK_STATE_DIR)):
        if os.path.isdir(path):
            return path
    return None


def empty_ledger(host: str) -> Ledger:
    return {"version": 0, "host": host, "gpus": {}, "node": None, "history": []}


def _check_shape(data: Any) -> Ledger:
    """The parsed file, if it is a ledger; ``ValueError`` saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if not isinstance(data.get("version"), int) or isinstance(data.get("version"), bool):
        raise ValueError("'version' is not an integer")
    if not isinstance(data.get("gpus"), dict) or not all(isinstance(v, dict) for v in data["gpus"].values()):
        raise ValueError("'gpus' is not an object of objects")
    if data.get("node") is not None and not isinstance(data["node"], dict):
        raise ValueError("'node' is not an object")
    if not isinstance(data.get("history", []), list):
        raise ValueError("'history' is not a list")
    data.setdefault("history", [])
    data.setdefault("node", None)
    return data


def history_entry(action: str, by: str, reason: Optional[str], ok: bool, **extra: Any) -> Dict[str, Any]:
    entry: Dict[str, Any] = {
        "t": round(time.time(), 3),
        "action": action,
        "gpus": extra.pop("gpus", []),
        "by": by,
        "reason": reason,
        "ok": ok,
        "error": extra.pop("error", None),
        "audit_id": extra.pop("audit_id", None),
    }
    entry.update(extra)
    return entry


class LedgerFile:
    """One host's ledger in one state dir."""

    def __init__(self, state_dir: str, host: str, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.host = host
        self.clock = clock
        name = safe_host(host)
        self.path = os.path.join(state_dir, "ledger-%s.json" % name)
        self.lock_path = os.path.join(state_dir, "ledger-%s.lock" % name)

    @contextlib.contextmanager
    def locked(self) -> Iterator["Txn"]:
        """The ledger under an exclusive lock; saved on exit if ``txn.changed``.

        Expired reservations are dropped on the way in, so that whoever holds
        the lock decides on the ledger as it stands now.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            txn = Txn(self._load(), self.clock())
            txn.expire()
            if txn.changed:
                # Saved at once, so the version a preview reports is the one on
                # disk: otherwise the apply that follows sees its own expiry as
                # someone else's change.
                self._save(txn)
            yield txn
            if txn.changed:
                self._save(txn)
        finally:
            os.close(fd)  # closing releases the lock

    def _save(self, txn: "Txn") -> None:
        txn.data["version"] += 1
        del txn.data["history"][:-HISTORY_MAX]
        self._write(txn.data)
        txn.changed = False

    def _load(self) -> Ledger:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return empty_ledger(self.host)
        except OSError as exc:
            raise LedgerError("cannot read the ledger %s: %s" % (self.path, exc.strerror)) from None
        try:
            return _check_shape(json.loads(raw.decode("utf-8")))
        except ValueError as exc:
            aside = "%s.corrupt-%d" % (self.path, int(self.clock()))
            os.replace(self.path, aside)
            raise LedgerError(
                "the ledger %s is corrupt (%s); it was moved to %s and nothing was done. "
                "Reservations and drains it held are in that file: check them, then ask again "
                "(a new, empty ledger starts with the next action)" % (self.path, exc, aside)
            ) from None

    def _write(self, data: Ledger) -> None:
        tmp = "%s.tmp-%d" % (self.path, os.getpid())
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise LedgerError("cannot write the ledger %s: %s" % (self.path, exc.strerror)) from None
        with contextlib.suppress(OSError):  # the rename itself must reach the disk too
            dfd = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def record_failure(self, entry: Dict[str, Any]) -> Optional[str]:
        """Append a history entry for a refused request; why not, if it could not be."""
        try:
            with self.locked() as txn:
                txn.add_history(entry)
        except (LedgerError, OSError) as exc:
            return str(exc)
        return None


class Txn:
    """The ledger as read under the lock, and whether it must be written back."""

    def __init__(self, data: Ledger, now: float) -> None:
        self.data = data
        self.now = now
        self.changed = False
        self.expired: List[Dict[str, Any]] = []

    @property
    def version(self) -> int:
        return int(self.data["version"])

    def gpu(self, uuid: str) -> Optional[Dict[str, Any]]:
        return self.data["gpus"].get(uuid)  # type: ignore[no-any-return]

    def set_gpu(self, uuid: str, entry: Optional[Dict[str, Any]]) -> None:
        if entry is None:
            self.data["gpus"].pop(uuid, None)
        else:
            self.data["gpus"][uuid] = entry
        self.changed = True

    def set_node(self, entry: Optional[Dict[str, Any]]) -> None:
        self.data["node"] = entry
        self.changed = True

    def add_history(self, entry: Dict[str, Any]) -> None:
        self.data["history"].append(entry)
        self.changed = True

    def expire(self) -> None:
        for uuid, entry in list(self.data["gpus"].items()):
            until = entry.get("until")
            if entry.get("state") == "reserved" and isinstance(until, (int, float)) and until <= self.now:
                del self.data["gpus"][uuid]
                self.expired.append(entry)
                why = "reservation for %s (by %s) expired at %s" % (entry.get("for"), entry.get("by"), until)
                self.add_history(history_entry("expire", "gputui", why, True, gpus=[entry.get("index")], uuid=uuid))


# The longest text a sample carries per field. Requests are held to shorter
# reasons, but a ledger written by hand or by an older agent is not, and
# every sample carries the summary: its size must not follow the file's.
SUMMARY_TEXT_MAX = 200
GPU_KEYS = ("state", "for", "by", "until", "reason", "ticket", "since", "backend")
NODE_KEYS = ("state", "by", "reason", "ticket", "since", "backend", "slurm_node", "audit_id")


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SUMMARY_TEXT_MAX:
        return value[: SUMMARY_TEXT_MAX - 3] + "..."
    return value


def summary(data: Ledger) -> Optional[Dict[str, Any]]:
    """What a sample frame carries: per GPU index and the node, without
    history, each text cut to ``SUMMARY_TEXT_MAX`` (the ledger keeps it whole)."""
    gpus: Dict[str, Any] = {}
    for uuid, entry in data.get("gpus", {}).items():
        keep = {k: _short(entry.get(k)) for k in GPU_KEYS}
        keep["uuid"] = _short(uuid)
        gpus[_short(str(entry.get("index")))] = keep
    node = data.get("node")
    if isinstance(node, dict):
        node = {k: _short(node.get(k)) for k in NODE_KEYS if k in node}
    if not gpus and not node:
        return None
    return {"version": data.get("version"), "gpus": gpus, "node": node}


class LedgerView:
    """A cheap, lock-free read for the streaming agent, once a sample.

    The file is only ever replaced whole, so reading without the lock sees
    either the old or the new ledger. ``stat`` decides whether to parse at
    all; a file that cannot be parsed becomes an ``error`` in the summary,
    never an exception in the sampler. Expiry is applied to the view (not
    written: only writers under the lock change the file).
    """

    def __init__(self, state_dir: str, host: str, clock: Callable[[], float] = time.time) -> None:
        self.path = LedgerFile(state_dir, host).path
        self.clock = clock
        self._key: Optional[Tuple[int, int, int]] = None
        self._data: Optional[Ledger] = None
        self._error: Optional[str] = None

    def read(self) -> Optional[Ledger]:
        """The parsed ledger (``None`` if absent or unreadable; see ``error``)."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._key, self._data = None, None
            self._error = None if exc.errno == errno.ENOENT else "cannot read %s: %s" % (self.path, exc.strerror)
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            self._key = key
            try:
                with open(self.path, "rb") as f:
                    self._data = _check_shape(json.loads(f.read().decode("utf-8")))
                self._error = None
            except (OSError, ValueError) as exc:
                self._data = None
                self._error = "the ledger %s is unreadable: %s" % (self.path, exc)
        return self._data

    def summary(self) -> Optional[Dict[str, Any]]:
        data = self.read()
        if data is None:
            return {"version": None, "gpus": {}, "node": None, "error": self._error} if self._error else None
        now = self.clock()
        live = {
            u: e
            for u, e in data["gpus"].items()
            if not (e.get("state") == "reserved" and isinstance(e.get("until"), (int, float)) and e["until"] <= now)
        }
        return summary(dict(data, gpus=live))
