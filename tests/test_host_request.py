"""The host request is defined once: the dashboard's pydantic HostRequest and the
agent's stdlib parser (gputui.agent.act_request) have the same fields and
accept and refuse the same requests (but for the control-plane backend and
actions, which an agent is never sent), and the guard's bytes on the wire are
what they were when the request was a hand-built dict."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gputui import registry
from gputui.actions.audit import AuditLog
from gputui.actions.backends.agent import payload
from gputui.actions.guard import Guard, HostStep
from gputui.actions.model import ActionRequest, Affected, HostAnswer, HostRequest, Operator, Target
from gputui.agent import act_request
from gputui.agent.act_request import Refused, Request
from gputui.config import Config
from gputui.protocol import ACTION_PROTOCOL, ACTIONS, AGENT_BACKENDS, ALL_ACTIONS, CONTROL_PLANE_ACTIONS, GPU_ACTIONS

MISSING = object()  # the field left out of the request
NOW = time.time()
LATER = NOW + 3600

OPERATORS: list[Any] = [
    {"user": "alice"}, {"user": "alice", "host": "console1", "keys": ["SHA256:x"]}, {"user": "a", "host": None},
    {"user": "a", "extra": 1}, {"user": ""}, {"user": 3}, {"host": "c"}, {"user": "a", "host": 3},
    {"user": "a", "keys": "k"}, {"user": "a", "keys": [1]}, {"user": "a", "keys": None}, None, "alice", [], MISSING,
]  # fmt: skip
# Every field, with values each side must judge alike: good, bad in type, out of range.
CANDIDATES: dict[str, list[Any]] = {
    "v": [1, True, 1.0, 2, 0, "1", None, MISSING],
    "phase": ["preview", "apply", "Apply", "", None, 1, MISSING],
    "action": [*ALL_ACTIONS, "bogus", "", None, 3, MISSING],
    "gpus": [["0"], [0], [" 1 "], ["GPU-5d1c"], ["0", 1], [], [True], "0", None, [1.5], [None], [[0]], MISSING],
    "pid": [None, 1, 2, 4242, 0, -3, "4242", True, 2.5, MISSING],
    "pid_start": [None, 0, 123456, "1", True, 1.5, MISSING],
    "backend": [*registry.backend_names(), "bogus", "", "Ledger", None, 0, False, ["ledger"], MISSING],
    "slurm_node": [None, "gpu-07", "gpu[01-04]", "a,b", "n.example_1", "", "a b", "x\n", "n;rm", 7, MISSING],
    "operator": OPERATORS,
    "reason": ["fan noise", "é 温度\n'\"$(x)", "x" * 200, "", "   ", "x" * 201, None, 3, MISSING],
    "ticket": [None, "T-1", "", "x" * 64, "x" * 65, 3, MISSING],
    "for": [None, "bob", "", "  ", 3, MISSING],
    "until": [None, LATER, int(LATER), NOW - 10, 0, "tomorrow", True, math.inf, math.nan, MISSING],
    "term_wait_s": [None, 0, 0.0, 10.0, 300, 300.0, 300.5, -1, -0.1, "5", True, math.nan, math.inf, MISSING],
    "kill_after": [False, True, 0, 1, "yes", None, MISSING],
    "expect_version": [None, 0, 7, "7", True, 1.5, MISSING],
    "audit_id": [None, "a1b2c3", "", 3, MISSING],
}
# By design, and only these: an agent is never sent a control-plane backend or action, so it
# refuses one; the model judges such a request as the agent judges it with the stand-in named here
# (the agent's own Slurm backend, the node action with the same fields).
MODEL_ONLY: dict[tuple[str, str], tuple[str, str]] = {
    ("backend", "slurmctld"): ("backend", "slurm"),
    ("action", "reserve-node"): ("action", "drain-node"),
    ("action", "release-node"): ("action", "resume-node"),
}


def base(action: str, phase: str) -> dict[str, Any]:
    """A request both sides accept, with what ``action`` needs."""
    req: dict[str, Any] = {"v": 1, "phase": phase, "action": action, "operator": {"user": "alice", "host": "console1"}}
    req["reason"] = "maintenance"
    if action in GPU_ACTIONS:
        req["gpus"] = ["0"]
    if action == "kill":
        req["pid"] = 4242
    if action == "reserve":
        req["for"] = "bob"
    return req


def model_accepts(obj: dict[str, Any]) -> bool:
    try:
        HostRequest.model_validate(obj)
    except ValidationError:
        return False
    return True


def agent_accepts(obj: dict[str, Any]) -> bool:
    try:
        Request(obj)
    except Refused:
        return False
    return True


def test_the_model_has_the_agents_fields_and_version() -> None:
    fields = {f.alias or name for name, f in HostRequest.model_fields.items()}
    assert fields == act_request.KNOWN_FIELDS
    assert set(CANDIDATES) == act_request.KNOWN_FIELDS, "every field needs values both sides must judge alike"
    assert HostRequest.model_validate(base("drain", "preview")).v == ACTION_PROTOCOL


def test_the_agent_takes_the_agent_flavour_and_nothing_else() -> None:
    agent = {k.name for k in registry.ACTION_BACKENDS if k.flavour == "agent"}
    assert agent == set(AGENT_BACKENDS) == set(act_request.BACKENDS)
    control = {k.name for k in registry.ACTION_BACKENDS if k.flavour == "control-plane"}
    assert {("backend", name) for name in control} | {("action", a) for a in CONTROL_PLANE_ACTIONS} == set(MODEL_ONLY)
    assert set(ALL_ACTIONS) - set(ACTIONS) == set(CONTROL_PLANE_ACTIONS)


@pytest.mark.parametrize("action", CONTROL_PLANE_ACTIONS)
def test_a_control_plane_action_is_the_dashboards_alone(action: str) -> None:
    """The slurmctld backend is handed reserve-node and release-node; an agent sent one refuses it by name."""
    obj = {**base(action, "preview"), "backend": "slurmctld", "slurm_node": "gpu07", "for": "bob"}
    assert model_accepts(obj)
    with pytest.raises(Refused, match=f"unknown action '{action}'"):
        Request({**obj, "backend": "slurm"})


@pytest.mark.parametrize("phase", ["preview", "apply"])
@pytest.mark.parametrize("action", ACTIONS)
def test_a_request_built_from_the_model_is_one_the_agent_takes(action: str, phase: str) -> None:
    req = HostRequest(
        v=ACTION_PROTOCOL,
        phase=phase,  # type: ignore[arg-type]
        action=action,
        gpus=["0", "GPU-5d1c"] if action in GPU_ACTIONS else [],
        pid=4242 if action == "kill" else None,
        pid_start=99 if action == "kill" and phase == "apply" else None,
        backend="slurm",
        slurm_node="gpu[07-08]",
        operator={"user": "alice", "host": "console1", "keys": ["SHA256:abc"]},  # type: ignore[arg-type]
        reason='fan "noise"\nline two',
        ticket="RMA-1",
        holder="bob" if action == "reserve" else None,
        until=LATER if action == "reserve" else None,
        term_wait_s=2.5,
        kill_after=action == "kill",
        expect_version=7 if phase == "apply" else None,
        audit_id="a1b2c3" if phase == "apply" else None,
    )
    wire = json.loads(payload(req))
    assert list(wire) == list(req.wire()) and set(wire) == act_request.KNOWN_FIELDS
    parsed = Request(wire)
    assert parsed.unknown == []
    assert (parsed.phase, parsed.action, parsed.gpus, parsed.backend, parsed.slurm_node) == (
        phase, action, list(req.gpus), "slurm", "gpu[07-08]",
    )  # fmt: skip
    assert (parsed.reason, parsed.ticket, parsed.holder, parsed.until) == (req.reason, "RMA-1", req.holder, req.until)
    assert (parsed.pid, parsed.pid_start, parsed.term_wait_s, parsed.kill_after) == (req.pid, req.pid_start, 2.5, req.kill_after)
    assert (parsed.expect_version, parsed.audit_id, parsed.by) == (req.expect_version, req.audit_id, "alice@console1")


@pytest.mark.parametrize("field", sorted(CANDIDATES))
def test_each_field_is_accepted_and_refused_alike(field: str) -> None:
    """Both ways: what the model refuses the agent refuses, and what the agent
    refuses the model does, for every action and phase."""
    disagree = []
    for action in ACTIONS:
        for phase in ("preview", "apply"):
            for value in CANDIDATES[field]:
                obj = base(action, phase)
                if value is MISSING:
                    obj.pop(field, None)
                else:
                    obj[field] = value
                model, agent = model_accepts(obj), agent_accepts(obj)
                expected = (agent, agent)
                if isinstance(value, str) and (field, value) in MODEL_ONLY:
                    stand_in, as_value = MODEL_ONLY[(field, value)]
                    expected = (agent_accepts({**obj, stand_in: as_value}), False)
                if (model, agent) != expected:
                    shown = "missing" if value is MISSING else repr(value)
                    disagree.append(f"{action}/{phase} {field}={shown}: model {model}, agent {agent}")
    assert disagree == []


def test_unknown_fields_the_agent_notes_and_the_dashboard_never_sends() -> None:
    obj = {**base("drain", "preview"), "priority": "high"}
    assert Request(obj).unknown == ["priority"]  # an older agent takes a newer dashboard's request
    assert not model_accepts(obj)  # a typo in the dashboard's own request is caught there


def legacy_request(guard: Guard, request: ActionRequest, step: HostStep, phase: str, audit_id: str | None) -> dict[str, Any]:
    """The request as the guard built it by hand before HostRequest (its ``_host_request``)."""
    target, preview = step.target, step.preview
    pid_start = None
    if phase == "apply" and target.pid is not None:
        pid_start = next((a.pid_start for a in preview.affected if a.pid == target.pid), None)
    return {
        "v": ACTION_PROTOCOL,
        "phase": phase,
        "action": request.kind,
        "gpus": list(target.gpus),
        "pid": target.pid,
        "pid_start": pid_start,
        "backend": step.backend,
        "slurm_node": step.host.slurm_node or step.host.name,
        "operator": guard.operator.as_dict(),
        "reason": request.reason,
        "ticket": request.ticket,
        "for": request.holder or (guard.operator.user if request.kind == "reserve" else None),
        "until": request.until,
        "term_wait_s": guard._term_wait(request),
        "kill_after": request.kill_after,
        "expect_version": preview.ledger_version if phase == "apply" else None,
        "audit_id": audit_id,
    }


@pytest.mark.parametrize(
    "request_",
    [
        ActionRequest("reserve", [Target("gpu-07", ("0", "GPU-5d1c"))], "eval run ✓", holder="team-vision", until=LATER),
        ActionRequest("reserve", [Target("gpu-07", ("1",))], "mine", ticket="T-9"),
        ActionRequest("drain", [Target("gpu-07", ("3",))], 'fan "noise"\nsecond line'),
        ActionRequest("kill", [Target("gpu-07", pid=4242)], "runaway", kill_after=True, term_wait_s=0.0),
        ActionRequest("kill", [Target("gpu-07", pid=4243)], "runaway"),
        ActionRequest("drain-node", [Target("gpu-07")], "rack move"),
        ActionRequest("resume-node", [Target("gpu-07")], "back"),
    ],
    ids=lambda r: r.kind,
)
def test_the_bytes_on_the_wire_are_those_of_the_hand_built_request(tmp_path: Path, request_: ActionRequest) -> None:
    config = Config.model_validate(
        {"actions": {"enabled": True, "backend": "nvml"}, "hosts": [{"name": "gpu-07", "slurm_node": "gpu07"}]}
    )
    guard = Guard(config, Operator("alice", "console1", ("SHA256:k",)), AuditLog(tmp_path / "audit.jsonl"))
    target = request_.targets[0]
    preview = HostAnswer(ok=True, ledger_version=12, affected=[Affected(pid=4242, pid_start=777, gpu=0)])
    step = HostStep(target, config.hosts[0], "nvml", preview)
    for phase, audit_id in (("preview", None), ("apply", "a1b2c3")):
        built = guard.host_request(request_, step, phase, audit_id, 12 if phase == "apply" else None)  # type: ignore[arg-type]
        old = legacy_request(guard, request_, step, phase, audit_id)
        assert payload(built) == json.dumps(old, ensure_ascii=False).encode("utf-8") + b"\n"
