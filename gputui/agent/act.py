"""``gputui agent --act``: carry out one action request on this host.

The operator's console asks twice: ``preview`` (what would happen, and the
ledger version it was judged against) and ``apply`` (do it, unless the
ledger changed meanwhile). Both run the same plan under the ledger lock, so
what was shown is what is checked. Every apply, refused or failed ones
included, leaves a line in the ledger's history and in syslog: the host
keeps its own record of what was done to it, and by whom.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from gputui.agent import act_gpu, act_kill, act_node
from gputui.agent.act_host import HostGpus, syslog
from gputui.agent.act_request import Refused, Request
from gputui.agent.ledger import LedgerError, LedgerFile, Txn, history_entry
from gputui.protocol import GPU_ACTIONS

Response = Dict[str, Any]


def base_response(phase: Any, host: str, state_dir: Optional[str], notes: List[str]) -> Response:
    return {
        "v": 1, "ok": False, "phase": phase if phase in ("preview", "apply") else "preview", "host": host,
        "error": None, "conflict": False, "ledger_version": None, "state_dir": state_dir, "gpus": [],
        "commands": [], "steps": [], "affected": [], "notes": list(notes), "done": [],
    }  # fmt: skip


def execute(obj: Any, nvml: Any, host: str, ledger: Optional[LedgerFile], notes: List[str]) -> Response:
    """The response to one request (a parsed JSON value); never raises for a bad request."""
    phase = obj.get("phase") if isinstance(obj, dict) else None
    resp = base_response(phase, host, ledger.state_dir if ledger else None, notes)
    req: Optional[Request] = None
    try:
        req = Request(obj)
        if req.unknown:
            resp["notes"].append("ignored unknown request fields: %s" % ", ".join(req.unknown))
        if ledger is None:
            raise Refused("no usable state dir for the ledger: %s" % "; ".join(notes))
        _run(req, nvml, host, ledger, resp)
        resp["ok"] = True
    except Refused as exc:
        resp["error"] = str(exc)
        resp["conflict"] = exc.conflict
    except LedgerError as exc:
        resp["error"] = str(exc)
    except nvml.NVMLError as exc:
        resp["error"] = "NVML failed: %s" % exc
    if req is not None and req.apply:
        _leave_a_record(req, ledger, resp)
    elif isinstance(obj, dict) and obj.get("phase") == "apply" and ledger is not None:
        _leave_a_record_of_junk(obj, ledger, resp)
    return resp


def _run(req: Request, nvml: Any, host: str, ledger: LedgerFile, resp: Response) -> None:
    hg = HostGpus(nvml)
    try:
        if req.action == "kill":
            _kill(req, hg, ledger, resp)
            return
        with ledger.locked() as txn:
            _check_version(req, txn, resp, hg)
            if req.action in GPU_ACTIONS:
                gpus = act_gpu.plan(req, hg, txn, resp)
                if req.apply:
                    act_gpu.apply(req, hg, txn, resp, gpus)
                    txn.add_history(_entry(req, True, None, [g.index for g in gpus]))
            else:
                act_node.plan(req, host, hg, txn, resp)
                if req.apply:
                    act_node.apply(req, host, txn, resp)
                    txn.add_history(_entry(req, True, None, []))
        if req.apply:
            resp["ledger_version"] = txn.version
            resp["recorded"] = True
    finally:
        hg.close()


def _check_version(req: Request, txn: Txn, resp: Response, hg: Optional[HostGpus] = None) -> None:
    resp["ledger_version"] = txn.version
    if txn.expired:
        resp["notes"].append("%d expired reservation(s) were dropped from the ledger" % len(txn.expired))
    if req.apply and req.expect_version is not None and req.expect_version != txn.version:
        raise Refused(
            "changed since your preview: the ledger is at version %d, your preview saw %d%s: preview again"
            % (txn.version, req.expect_version, _held_now(req, hg, txn, resp)),
            conflict=True,
        )


def _held_now(req: Request, hg: Optional[HostGpus], txn: Txn, resp: Response) -> str:
    """What the GPUs asked for hold now, in words and in the answer's ``gpus``: a
    second operator must learn who got there first, not only that someone did."""
    if hg is None or req.action not in GPU_ACTIONS:
        return ""
    try:
        gpus = hg.resolve(req.gpus)
    except Refused:
        return ""  # the apply's own plan would say why; the version is the news here
    resp["gpus"] = act_gpu.gpu_states(txn, gpus)
    return "".join("; %s is now %s" % (g.label(), act_gpu.entry_words(txn.gpu(g.uuid or ""))) for g in gpus)


def _kill(req: Request, hg: HostGpus, ledger: LedgerFile, resp: Response) -> None:
    """Checked under the lock; the signals and the wait run outside it, so that
    a slow death does not hold up every other action on the host."""
    with ledger.locked() as txn:
        _check_version(req, txn, resp)
        on = act_kill.plan(req, hg, resp)
    if not req.apply:
        return
    act_kill.apply(req, resp)
    with ledger.locked() as txn:
        txn.add_history(_entry(req, True, None, [g.index for g in on]))
    resp["ledger_version"] = txn.version
    resp["recorded"] = True


def _entry(req: Request, ok: bool, error: Optional[str], gpus: List[int]) -> Dict[str, Any]:
    return history_entry(req.action, req.by, req.reason, ok, error=error, audit_id=req.audit_id, gpus=gpus, **req.targets())


def _summary(req: Request, resp: Response) -> str:
    """One syslog line; the reason and error JSON-quoted so that they stay on it."""
    where = "pid=%s" % req.pid if req.action == "kill" else "gpus=%s" % ",".join(req.gpus) if req.gpus else "node"
    line = "%s %s backend=%s by=%s audit=%s ok=%s reason=%s" % (
        req.action, where, req.backend, req.by, req.audit_id, "true" if resp["ok"] else "false",
        json.dumps(req.reason, ensure_ascii=False),
    )  # fmt: skip
    if resp["error"]:
        line += " error=%s" % json.dumps(resp["error"], ensure_ascii=False)
    return line


def _leave_a_record(req: Request, ledger: Optional[LedgerFile], resp: Response) -> None:
    if not resp.pop("recorded", False) and ledger is not None:
        gpus = [a["gpu"] for a in resp["affected"] if req.action == "kill"] or [g["index"] for g in resp["gpus"]]
        why = ledger.record_failure(_entry(req, False, resp["error"], gpus))
        if why is not None:
            what = "failure" if resp["done"] else "refusal"  # something was done before it went wrong
            resp["notes"].append("this %s is not in the ledger's history: %s" % (what, why))
    failed = syslog(_summary(req, resp))
    if failed is not None:
        resp["notes"].append(failed)


def _leave_a_record_of_junk(obj: Dict[str, Any], ledger: LedgerFile, resp: Response) -> None:
    """An apply too malformed to parse is still recorded: someone sent it."""
    op = obj.get("operator")
    by = str(op.get("user")) if isinstance(op, dict) else "unknown"
    action = str(obj.get("action"))
    reason = obj.get("reason") if isinstance(obj.get("reason"), str) else None
    ledger.record_failure(history_entry(action, by, reason, False, error=resp["error"], audit_id=None))
    syslog("%s by=%s ok=false error=%s" % (action, by, json.dumps(resp["error"], ensure_ascii=False)))
