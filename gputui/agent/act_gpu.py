"""reserve, release, drain and undrain: per-GPU actions kept in the ledger.

Each has a plan (what would happen, or why it cannot: run for preview and
again for apply, under the ledger lock) and an apply (do it; on a failure
midway, undo what was done, so that the ledger and the GPUs agree).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

from gputui.agent.act_host import Gpu, HostGpus, am_root, mode_name
from gputui.agent.act_request import Refused, Request, local_time
from gputui.agent.ledger import Txn

Response = Dict[str, Any]
PROHIBITED = 2
REBOOT_NOTE = "compute mode does not survive a reboot or driver reload; the agent re-applies the ledger when it starts"


def gpu_states(txn: Txn, gpus: List[Gpu]) -> List[Dict[str, Any]]:
    out = []
    for g in gpus:
        entry = txn.gpu(g.uuid or "") or {}
        state = entry.get("state", "free")
        holder = entry.get("for") if state == "reserved" else entry.get("by")
        out.append({"index": g.index, "uuid": g.uuid, "state": state, "holder": holder})
    return out


def until_words(until: float, now: Optional[float] = None) -> str:
    """``2026-12-01 08:00 CET (in 2h 5m)``: the host's local time, and how far off it is."""
    stamp = local_time(until)
    if stamp.endswith("(not a time)"):
        return stamp
    ahead = until - (time.time() if now is None else now)
    minutes = round(abs(ahead) / 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = ["%dd" % days if days else "", "%dh" % hours if hours else "", "%dm" % mins if mins and not days else ""]
    words = " ".join(p for p in parts if p)
    off = ("in %s" % words if ahead > 0 else "%s ago" % words) if minutes else "in under a minute"
    return "%s (%s)" % (stamp, off)


def _held(entry: Dict[str, Any]) -> str:
    until = entry.get("until")
    when = " until %s" % until_words(until) if isinstance(until, (int, float)) else ""
    return "reserved for %s by %s%s (%s)" % (entry.get("for"), entry.get("by"), when, entry.get("reason"))


def entry_words(entry: Optional[Dict[str, Any]]) -> str:
    """A GPU's ledger entry in words: free, reserved for whom, or drained by whom and why."""
    if entry is None:
        return "free"
    if entry.get("state") == "reserved":
        return _held(entry)
    return "%s by %s (%s)" % (entry.get("state"), entry.get("by"), entry.get("reason"))


def _need_root(req: Request, what: str) -> None:
    """A preview says at once that it would fail; an apply lets NVML answer for itself."""
    if not am_root() and not req.apply:
        raise Refused(
            "%s needs root: setting a GPU's compute mode is refused by NVML (NO_PERMISSION) "
            "for other users, and this agent runs as uid %d" % (what, os.geteuid())
        )


def plan(req: Request, hg: HostGpus, txn: Txn, resp: Response) -> List[Gpu]:
    gpus = hg.resolve(req.gpus)
    _PLANS[req.action](req, hg, txn, resp, gpus)
    resp["affected"] = hg.affected(gpus) + resp["affected"]
    resp["gpus"] = gpu_states(txn, gpus)
    return gpus


def _plan_reserve(req: Request, hg: HostGpus, txn: Txn, resp: Response, gpus: List[Gpu]) -> None:
    for g in gpus:
        entry = txn.gpu(g.uuid or "")
        if entry is not None and entry.get("state") == "drained":
            raise Refused("%s is drained by %s (%s): undrain it first" % (g.label(), entry.get("by"), entry.get("reason")), True)
        if entry is not None and entry.get("for") != req.holder:
            raise Refused("%s is %s" % (g.label(), _held(entry)), conflict=True)
        verb = "extend the reservation of" if entry is not None else "reserve"
        resp["steps"].append(
            "%s %s for %s %s" % (verb, g.label(), req.holder, "until %s" % until_words(req.until) if req.until else "with no end")
        )
    if req.backend == "slurm":
        resp["notes"].append(
            "backend slurm: the hold is kept in the ledger only. Slurm is not asked to reserve these GPUs "
            "(gputui makes no Slurm reservations yet) and may still start jobs on them"
        )
    elif req.backend == "nvml":
        resp["notes"].append("backend nvml: a hold is kept in the ledger only; the GPUs stay open to any process")


def _plan_release(req: Request, hg: HostGpus, txn: Txn, resp: Response, gpus: List[Gpu]) -> None:
    for g in gpus:
        entry = txn.gpu(g.uuid or "")
        if entry is None or entry.get("state") != "reserved":
            state = "free" if entry is None else "%s (use undrain)" % entry.get("state")
            raise Refused("%s is not reserved: it is %s" % (g.label(), state))
        resp["steps"].append("release %s, %s" % (g.label(), _held(entry)))


def _plan_drain(req: Request, hg: HostGpus, txn: Txn, resp: Response, gpus: List[Gpu]) -> None:
    for g in gpus:
        entry = txn.gpu(g.uuid or "")
        if entry is not None and entry.get("state") == "drained":
            raise Refused("%s is already drained by %s (%s)" % (g.label(), entry.get("by"), entry.get("reason")))
        if entry is not None and entry.get("for") != req.operator_user:
            raise Refused("%s is %s: release it first" % (g.label(), _held(entry)), conflict=True)
        if req.backend == "nvml":
            _need_root(req, "the nvml backend")
            now = hg.compute_mode(g)
            resp["steps"].append("set %s compute mode to PROHIBITED (now %s)" % (g.label(), mode_name(now)))
        else:
            resp["steps"].append("record %s as drained in the ledger" % g.label())
    resp["notes"].append("processes already running on a drained GPU keep running; drain stops new work only")
    if req.backend == "nvml":
        resp["notes"].append(REBOOT_NOTE)
    elif req.backend == "slurm":
        _offer_drain_node(hg, resp, gpus)
    else:
        resp["notes"].append("backend ledger: recorded only; nothing stops new work from starting on these GPUs")


def _offer_drain_node(hg: HostGpus, resp: Response, gpus: List[Gpu]) -> None:
    others = [g for g in hg.gpus if g not in gpus]
    resp["affected"] = hg.affected(others)
    resp["notes"].append(
        "Slurm cannot drain one GPU: the drain is recorded in the ledger only and Slurm may still schedule work here. "
        "To stop that, drain the node (drain-node --backend slurm); it would also affect the %d process(es) on the "
        "other GPUs listed in 'affected'" % len(resp["affected"])
    )


def _plan_undrain(req: Request, hg: HostGpus, txn: Txn, resp: Response, gpus: List[Gpu]) -> None:
    for g in gpus:
        entry = txn.gpu(g.uuid or "")
        if entry is None or entry.get("state") != "drained":
            raise Refused("%s is not drained: it is %s" % (g.label(), "free" if entry is None else entry.get("state")))
        if entry.get("backend") == "nvml":
            _need_root(req, "undraining a GPU drained with the nvml backend")
            prev = entry.get("prev_compute_mode") or 0
            resp["steps"].append(
                "set %s compute mode to %s (now %s)" % (g.label(), mode_name(prev), mode_name(hg.compute_mode(g)))
            )
        else:
            resp["steps"].append("remove the drain of %s (backend %s) from the ledger" % (g.label(), entry.get("backend")))
        if entry.get("backend") != req.backend:
            resp["notes"].append(
                "%s was drained with backend %s; it is undrained the same way" % (g.label(), entry.get("backend"))
            )


def apply(req: Request, hg: HostGpus, txn: Txn, resp: Response, gpus: List[Gpu]) -> None:
    if req.action == "drain" and req.backend == "nvml":
        prev = _set_modes(hg, resp, {g.index: PROHIBITED for g in gpus}, gpus)
    elif req.action == "undrain":
        back = {g.index: (txn.gpu(g.uuid or "") or {}).get("prev_compute_mode") or 0 for g in gpus}
        nvml_gpus = [g for g in gpus if (txn.gpu(g.uuid or "") or {}).get("backend") == "nvml"]
        _set_modes(hg, resp, back, nvml_gpus)
        prev = {}
    else:
        prev = {}
    for g in gpus:
        _record(req, txn, resp, g, prev.get(g.index))
    resp["gpus"] = gpu_states(txn, gpus)


def _record(req: Request, txn: Txn, resp: Response, g: Gpu, prev_mode: Optional[int]) -> None:
    uuid = g.uuid or ""
    if req.action in ("release", "undrain"):
        txn.set_gpu(uuid, None)
        resp["done"].append("%s %s: it is free" % ("released" if req.action == "release" else "undrained", g.label()))
        return
    state = "reserved" if req.action == "reserve" else "drained"
    entry = {
        "index": g.index, "state": state, "for": req.holder if state == "reserved" else None, "by": req.by,
        "reason": req.reason, "ticket": req.ticket, "since": round(txn.now, 3),
        "until": req.until if state == "reserved" else None, "backend": req.backend if state == "drained" else "ledger",
        "prev_compute_mode": prev_mode, "audit_id": req.audit_id,
    }  # fmt: skip
    txn.set_gpu(uuid, entry)
    resp["done"].append("%s %s in the ledger" % (state, g.label()))


def _set_modes(hg: HostGpus, resp: Response, modes: Dict[int, int], gpus: List[Gpu]) -> Dict[int, int]:
    """Set each GPU's compute mode; all or none: on a failure, put back those set."""
    nvml = hg.nvml
    prev: Dict[int, int] = {}
    for g in gpus:
        try:
            prev[g.index] = hg.compute_mode(g)
            nvml.nvmlDeviceSetComputeMode(g.handle, modes[g.index])
        except nvml.NVMLError as exc:
            for done in gpus:
                if done.index in prev and done.index != g.index:
                    try:
                        nvml.nvmlDeviceSetComputeMode(done.handle, prev[done.index])
                    except nvml.NVMLError:
                        resp["notes"].append("could not put back the compute mode of %s" % done.label())
            resp["done"].clear()
            hint = ""
            if getattr(exc, "value", None) == nvml.NVML_ERROR_NO_PERMISSION:
                hint = ": setting the compute mode needs root (this agent runs as uid %d)" % os.geteuid()
            raise Refused(
                "NVML refused to set the compute mode of %s: %s%s; nothing was changed" % (g.label(), exc, hint)
            ) from None
        resp["done"].append(
            "set %s compute mode to %s (was %s)" % (g.label(), mode_name(modes[g.index]), mode_name(prev[g.index]))
        )
    return prev


_PLANS = {"reserve": _plan_reserve, "release": _plan_release, "drain": _plan_drain, "undrain": _plan_undrain}
