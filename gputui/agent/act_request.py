"""One action request, checked strictly before anything is looked at.

The request comes from an operator's console over SSH; it is data, and a
field of the wrong type or a missing reason is refused here with an error
saying which field, so that no half-understood request reaches the ledger,
NVML or ``scontrol``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional

from gputui.protocol import ACTIONS, AGENT_BACKENDS, GPU_ACTIONS, MAX_TERM_WAIT_S, SLURM_NODE_NAME, words_problem

BACKENDS = AGENT_BACKENDS
# The request's fields: gputui.actions.model.HostRequest has the same (tests/test_host_request.py).
KNOWN_FIELDS = frozenset(
    {
        "v", "phase", "action", "gpus", "pid", "pid_start", "backend", "slurm_node", "operator", "reason",
        "ticket", "for", "until", "term_wait_s", "kill_after", "expect_version", "audit_id",
    }
)  # fmt: skip


def local_time(epoch: float) -> str:
    """This host's local time, with its zone; a value no clock can show, as it is."""
    try:
        return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(epoch))
    except (OverflowError, OSError, ValueError):
        return "%r (not a time)" % epoch


class Refused(Exception):
    """The request is not carried out; ``str()`` says why, in the operator's words."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _opt_str(obj: Dict[str, Any], key: str) -> Optional[str]:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise Refused("'%s' must be a string or null" % key)
    return value


class Request:
    """The fields of docs/actions.md's request, typed."""

    def __init__(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            raise Refused("a request is a JSON object")
        if obj.get("v") != 1:
            raise Refused("unsupported request version %r (this agent speaks 1)" % (obj.get("v"),))
        self.phase = obj.get("phase")
        if self.phase not in ("preview", "apply"):
            raise Refused("'phase' must be 'preview' or 'apply', not %r" % (self.phase,))
        self.action: str = obj.get("action")  # type: ignore[assignment]
        if self.action not in ACTIONS:
            raise Refused("unknown action %r (known: %s)" % (self.action, ", ".join(ACTIONS)))
        self.unknown = sorted(k for k in obj if k not in KNOWN_FIELDS)
        self._who(obj)
        self._where(obj)
        self._details(obj)

    @property
    def apply(self) -> bool:
        return bool(self.phase == "apply")

    def _who(self, obj: Dict[str, Any]) -> None:
        op = obj.get("operator")
        if not isinstance(op, dict) or not isinstance(op.get("user"), str) or not op["user"]:
            raise Refused("'operator' must be an object with a non-empty 'user'")
        host = op.get("host")
        if host is not None and not isinstance(host, str):
            raise Refused("'operator.host' must be a string")
        keys = op.get("keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise Refused("'operator.keys' must be a list of key fingerprints (strings)")
        self.operator_user: str = op["user"]
        self.by = "%s@%s" % (op["user"], host) if host else op["user"]
        reason = obj.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise Refused("a reason is required: say why, it goes to the ledger and syslog")
        self.reason: str = reason
        self.ticket = _opt_str(obj, "ticket")
        problem = words_problem(reason, self.ticket)
        if problem is not None:
            raise Refused(problem)
        self.audit_id = _opt_str(obj, "audit_id")
        version = obj.get("expect_version")
        if version is not None and not _int(version):
            raise Refused("'expect_version' must be an integer or null")
        self.expect_version: Optional[int] = version

    def _where(self, obj: Dict[str, Any]) -> None:
        gpus = obj.get("gpus", [])
        if not isinstance(gpus, list) or not all(isinstance(g, str) or _int(g) for g in gpus):
            raise Refused("'gpus' must be a list of GPU indices or UUIDs (strings)")
        self.gpus: List[str] = [str(g).strip() for g in gpus]
        if self.action in GPU_ACTIONS and not self.gpus:
            raise Refused("%s needs at least one GPU in 'gpus'" % self.action)
        if self.action not in GPU_ACTIONS and self.gpus:
            raise Refused("%s takes no 'gpus' (it acts on %s)" % (self.action, "a pid" if self.action == "kill" else "the node"))
        backend = obj.get("backend")
        self.backend: str = "ledger" if backend is None else backend
        if not isinstance(self.backend, str) or self.backend not in BACKENDS:
            raise Refused("unknown backend %r (known: %s)" % (self.backend, ", ".join(BACKENDS)))
        node = _opt_str(obj, "slurm_node")
        if node is not None and not SLURM_NODE_NAME.fullmatch(node):
            raise Refused("'slurm_node' %r is not a Slurm node name" % node)
        self.slurm_node = node
        pid, start = obj.get("pid"), obj.get("pid_start")
        if self.action == "kill" and not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 1):
            raise Refused("kill needs 'pid', a process id above 1")
        if pid is not None and not _int(pid):
            raise Refused("'pid' must be a process id or null")
        if start is not None and not _int(start):
            raise Refused("'pid_start' must be an integer (the start time the preview returned)")
        self.pid: Optional[int] = pid if self.action == "kill" else None
        self.pid_start: Optional[int] = start

    def _details(self, obj: Dict[str, Any]) -> None:
        self.holder = _opt_str(obj, "for")
        if self.action == "reserve" and not (self.holder or "").strip():
            raise Refused("reserve needs 'for': the user or team the GPUs are held for")
        until = obj.get("until")
        if until is not None and not _number(until):
            raise Refused("'until' must be epoch seconds or null")
        if until is not None and until <= time.time():
            raise Refused("'until' (%s) is in the past" % local_time(until))
        self.until: Optional[float] = None if until is None else float(until)
        wait = obj.get("term_wait_s", 10.0)
        if wait is None:
            wait = 10.0
        if not _number(wait) or not 0 <= wait <= MAX_TERM_WAIT_S:
            raise Refused("'term_wait_s' must be a number of seconds from 0 to %g" % MAX_TERM_WAIT_S)
        self.term_wait_s = float(wait)
        kill_after = obj.get("kill_after", False)
        if not isinstance(kill_after, bool):
            raise Refused("'kill_after' must be true or false")
        self.kill_after = kill_after

    def targets(self) -> Dict[str, Any]:
        """What the history and syslog say was aimed at."""
        out: Dict[str, Any] = {"backend": self.backend, "ticket": self.ticket}
        if self.pid is not None:
            out["pid"] = self.pid
        if self.action == "reserve":
            out.update({"for": self.holder, "until": self.until})
        return out
