"""The process around one action: stdin to request, response to stdout.

Kept apart from the streaming agent's loop: an ``--act`` agent starts, does
one thing and exits, with a status (0 when the response says ok) that a
script can test without parsing JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Dict, List, Optional

from gputui.agent.act import base_response, execute
from gputui.agent.ledger import LedgerError, LedgerFile, choose_state_dir
from gputui.agent.nvml_calls import text

MAX_REQUEST_BYTES = 1 << 20
PROHIBITED = 2


def act_main(args: argparse.Namespace, open_nvml: Callable[..., Any], host: str) -> int:
    notes: List[str] = []
    ledger: Optional[LedgerFile] = None
    try:
        state_dir, notes = choose_state_dir(args.state_dir)
        ledger = LedgerFile(state_dir, host)
    except LedgerError as exc:
        notes = [str(exc)]
    raw = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
    try:
        if len(raw) > MAX_REQUEST_BYTES:
            raise ValueError("over %d bytes" % MAX_REQUEST_BYTES)
        obj = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        resp = base_response(None, host, ledger.state_dir if ledger else None, notes)
        resp["error"] = "the request is not valid JSON: %s" % exc
        return _answer(resp)
    try:
        nvml = open_nvml(args, state_dir=ledger.state_dir if ledger and args.sim else None)
    except Exception as exc:
        resp = base_response(obj.get("phase") if isinstance(obj, dict) else None, host, None, notes)
        resp["error"] = "cannot load NVML: %s" % exc
        return _answer(resp)
    return _answer(execute(obj, nvml, host, ledger, notes))


def _answer(resp: Dict[str, Any]) -> int:
    sys.stdout.write(json.dumps(resp, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0 if resp["ok"] else 1


def reapply(nvml: Any, ledger: Dict[str, Any]) -> List[str]:
    """Set PROHIBITED again on each GPU drained with the nvml backend (after a
    reboot or driver reload it is back to the default); what could not be done."""
    drained = {u for u, e in ledger.get("gpus", {}).items() if e.get("state") == "drained" and e.get("backend") == "nvml"}
    if not drained:
        return []
    problems = []
    for i in range(nvml.nvmlDeviceGetCount()):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            uuid = text(nvml.nvmlDeviceGetUUID(handle))
            if uuid in drained and nvml.nvmlDeviceGetComputeMode(handle) != PROHIBITED:
                nvml.nvmlDeviceSetComputeMode(handle, PROHIBITED)
            drained.discard(uuid or "")
        except nvml.NVMLError as exc:
            problems.append("cannot re-apply the ledger's drain to GPU %d (compute mode PROHIBITED): %s" % (i, exc))
    problems += ["the ledger drains GPU %s, which this host does not have" % u for u in sorted(drained)]
    return problems
