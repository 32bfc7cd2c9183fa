"""kill: end one GPU process, politely first.

Only a process NVML lists on one of this host's GPUs may be killed: the
action is for runaway GPU jobs, not for anything on the host. The apply
must name the start time the preview saw, so that a pid reused by a new
process in between is not killed by mistake. SIGTERM comes first; SIGKILL
only when the operator asked for it, and the answer says which one ended it.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Dict, List

from gputui.agent.act_host import Gpu, HostGpus, pid_start, pid_state
from gputui.agent.act_request import Refused, Request

Response = Dict[str, Any]
POLL_S = 0.05
AFTER_KILL_S = 5.0


def plan(req: Request, hg: HostGpus, resp: Response) -> List[Gpu]:
    pid = req.pid or 0
    on = [g for g in hg.gpus if pid in hg.processes(g)]
    if not on:
        raise Refused(
            "pid %d is not a process on any GPU of this host (per NVML's process lists); only GPU processes can be killed" % pid
        )
    start = pid_start(pid)
    if start is None:
        raise Refused("pid %d is listed by NVML but gone from /proc: it has exited" % pid)
    resp["affected"] = [hg.describe(on[0], pid)]
    who = resp["affected"][0]
    resp["gpus"] = [{"index": g.index, "uuid": g.uuid, "state": "busy", "holder": who["user"]} for g in on]
    resp["steps"].append("send SIGTERM to pid %d (%s, user %s), %s" % (pid, who["command"], who["user"], _then(req)))
    if req.apply:
        if req.pid_start is None:
            raise Refused("apply of kill needs 'pid_start', the start time its preview returned")
        if req.pid_start != start:
            raise Refused(
                "pid %d is now another process (start time %d, the preview saw %d): preview again" % (pid, start, req.pid_start),
                True,
            )
    return on


def _then(req: Request) -> str:
    """What follows SIGTERM; a grace of 0 (with ``kill_after``) is SIGKILL at once."""
    if req.kill_after and req.term_wait_s == 0:
        return "then SIGKILL at once if it is still running"
    how = "SIGKILL if still running after %g s" % req.term_wait_s if req.kill_after else "no SIGKILL (not asked)"
    return "wait up to %g s; %s" % (req.term_wait_s, how)


def gone(pid: int, start: int) -> bool:
    """Exited, a zombie (it has exited; its parent has not reaped it yet), or the pid reused."""
    state = pid_state(pid)
    return state is None or state in ("Z", "X") or pid_start(pid) != start


def _wait_gone(pid: int, start: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if gone(pid, start):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise Refused(
            "no permission to signal pid %d: this agent runs as uid %d; killing another user's process needs root"
            % (pid, os.geteuid())
        ) from None


def apply(req: Request, resp: Response) -> None:
    pid, start = req.pid or 0, req.pid_start or 0
    t0 = time.monotonic()
    _signal(pid, signal.SIGTERM)
    resp["done"].append("sent SIGTERM to pid %d" % pid)
    if _wait_gone(pid, start, req.term_wait_s):
        resp["done"].append("pid %d ended after SIGTERM (%.1f s)" % (pid, time.monotonic() - t0))
        return
    if not req.kill_after:
        # SIGTERM went out: this timed out, it was not refused.
        raise Refused(
            "timed out: pid %d still running %g s after SIGTERM (SIGTERM was not honoured); "
            "no SIGKILL was sent: ask again with SIGKILL (--kill-after)" % (pid, req.term_wait_s)
        )
    _signal(pid, signal.SIGKILL)
    resp["done"].append("still running after %g s: sent SIGKILL to pid %d" % (req.term_wait_s, pid))
    if not _wait_gone(pid, start, AFTER_KILL_S):
        raise Refused(
            "timed out: pid %d is still there %g s after SIGKILL (state %s): it may be stuck in the kernel"
            % (pid, AFTER_KILL_S, pid_state(pid))
        )
    resp["done"].append("pid %d ended after SIGKILL (%.1f s in all)" % (pid, time.monotonic() - t0))
