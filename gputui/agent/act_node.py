"""drain-node and resume-node: the whole host, through Slurm or the ledger.

With the ``slurm`` backend the work is ``scontrol update NodeName=...``,
run from an argument list (the reason is one argument, whatever it holds)
and its error passed back verbatim, since Slurm's own words are what the
operator can look up. With ``ledger`` and ``nvml`` the node's state is only
recorded: nothing then stops a scheduler from placing work here, and the
answer says so.
"""

from __future__ import annotations

import shutil
from typing import Any, Dict, List

from gputui.agent.act_gpu import gpu_states
from gputui.agent.act_host import HostGpus, run_command
from gputui.agent.act_request import Refused, Request
from gputui.agent.ledger import Txn
from gputui.protocol import scontrol_update_argv

Response = Dict[str, Any]


def scontrol_argv(req: Request, host: str) -> List[str]:
    return scontrol_update_argv(req.action, req.slurm_node or host, req.reason)


def plan(req: Request, host: str, hg: HostGpus, txn: Txn, resp: Response) -> None:
    node = txn.data.get("node") or {}
    drained = node.get("state") == "drained"
    draining = req.action == "drain-node"
    if req.backend == "slurm":
        if shutil.which("scontrol") is None:
            raise Refused(
                "scontrol is not installed on this host (not found on PATH): is it a Slurm node? "
                "Backend ledger records the node's state without Slurm"
            )
        argv = scontrol_argv(req, host)
        resp["commands"].append(argv)
        resp["steps"].append("run: %s" % " ".join(argv[:4]) + (" Reason=<the reason>" if draining else ""))
        if drained == draining:
            resp["notes"].append(
                "the ledger already has the node %s; Slurm is asked anyway" % ("drained" if drained else "not drained")
            )
    else:
        if drained == draining:
            raise Refused(
                "the node is %s in the ledger" % ("already drained (by %s)" % node.get("by") if drained else "not drained")
            )
        resp["steps"].append("record the node as %s in the ledger" % ("drained" if draining else "resumed"))
        resp["notes"].append(
            "backend %s: the node's state is recorded in the ledger only; no scheduler is told. "
            "Use backend slurm to drain a Slurm node, or drain each GPU with backend nvml" % req.backend
        )
    if draining:
        resp["affected"] = hg.affected(hg.gpus)
        resp["notes"].append("running processes keep running; a drained node takes no new jobs")
    resp["gpus"] = gpu_states(txn, [g for g in hg.gpus if g.uuid])


def apply(req: Request, host: str, txn: Txn, resp: Response) -> None:
    for argv in resp["commands"]:
        ok, said = run_command(argv)
        if not ok:
            raise Refused(said)
        resp["done"].append("ran %s: ok%s" % (" ".join(argv[:4]), " (%s)" % said if said else ""))
    if req.action == "drain-node":
        txn.set_node(
            {
                "state": "drained",
                "by": req.by,
                "reason": req.reason,
                "ticket": req.ticket,
                "since": round(txn.now, 3),
                "backend": req.backend,
                "slurm_node": req.slurm_node or host,
                "audit_id": req.audit_id,
            }
        )
        resp["done"].append("recorded the node as drained in the ledger")
    else:
        txn.set_node(None)
        resp["done"].append("recorded the node as resumed in the ledger")
