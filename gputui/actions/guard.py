"""The one path every action takes, from the CLI and the UI alike:
policy → preview on every host → confirmation → apply → audit.

Nothing reaches a host's apply phase unless the policy allowed it and every
host's preview succeeded; every outcome (refused, dry run, cancelled,
applied, failed) is written to the audit log. The apply phase is preceded
by a "started" record, so an action interrupted halfway is still on record;
an apply cancelled while the hosts work (Ctrl-C) is recorded "interrupted".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from gputui import registry
from gputui.actions.audit import AuditLog
from gputui.actions.backends.base import ActionBackend, BackendFactory
from gputui.actions.model import (
    TYPED_CONFIRM,
    ActionRequest,
    HostAnswer,
    HostOperator,
    HostRequest,
    Operator,
    Target,
    request_problem,
)
from gputui.actions.policy import refusal
from gputui.config import Config, Host
from gputui.protocol import ACTION_PROTOCOL, MAX_REASON_CHARS, MAX_TICKET_CHARS

MAX_PARALLEL_HOSTS = 32
INTERRUPTED_WHILE_APPLYING = (
    "interrupted while the hosts were applying: some may have done it, others not; look (preview again) before retrying"
)


@dataclass
class HostStep:
    target: Target
    host: Host
    backend: str
    preview: HostAnswer
    result: HostAnswer | None = None


@dataclass
class Plan:
    request: ActionRequest
    operator: Operator
    steps: list[HostStep] = field(default_factory=list)
    refused: str | None = None
    audit_id: str | None = None  # of the refusal, when refused

    @property
    def confirmation(self) -> str | None:
        """What the operator must type to go ahead, or None for a plain yes."""
        hosts = self.request.hosts
        if len(hosts) > 1:
            return str(len(hosts))
        if self.request.kind in TYPED_CONFIRM:
            return hosts[0]
        return None


@dataclass
class Outcome:
    status: str  # refused | dry-run | cancelled | applied | failed | partial (and "interrupted" in the log)
    message: str
    audit_id: str
    plan: Plan

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "dry-run")


class Guard:
    """``backends``: ready-made backends by name (a scripted one, say), used
    before the registry's; the others are built when a host first needs them."""

    def __init__(
        self,
        config: Config,
        operator: Operator,
        audit: AuditLog,
        read_only: bool = False,
        backends: Mapping[str, ActionBackend] | None = None,
    ) -> None:
        self.config = config
        self.operator = operator
        self.audit = audit
        self.read_only = read_only
        self._backends: dict[str, ActionBackend] = dict(backends or {})
        self._by_module: dict[str, ActionBackend] = {}

    def backend(self, name: str) -> ActionBackend:
        """The backend a host's ``backend`` names, from gputui/registry.py's
        ACTION_BACKENDS: its module's ``backend(config)``, built once per guard
        and module (ledger, nvml and slurm share the agent's, and its SSH links)."""
        found = self._backends.get(name)
        if found is None:
            kind = registry.backend_kind(name)
            found = self._by_module.get(kind.module)
            if found is None:
                factory: BackendFactory = registry.load(kind).backend
                found = self._by_module[kind.module] = factory(self.config)
            self._backends[name] = found
        return found

    async def prepare(self, request: ActionRequest) -> Plan:
        """Check the policy and ask every host for a preview; a refusal is audited here."""
        plan = Plan(request, self.operator)
        why = refusal(request, self.operator, self.config, self.read_only)
        if why is None:
            plan.steps = await self._previews(request)
            failed = [s for s in plan.steps if not s.preview.ok]
            if failed:
                why = "; ".join(f"{s.target.label()}: {s.preview.error or 'refused'}" for s in failed)
        if why is not None:
            plan.refused = why
            plan.audit_id = self._record(plan, "refused", why)["id"]
        return plan

    def dry_run(self, plan: Plan) -> Outcome:
        message = "dry run: nothing was changed"
        return Outcome("dry-run", message, self._record(plan, "dry-run", message)["id"], plan)

    def cancel(self, plan: Plan, why: str = "not confirmed") -> Outcome:
        message = f"cancelled: {why}; nothing was changed"
        return Outcome("cancelled", message, self._record(plan, "cancelled", message)["id"], plan)

    async def apply(self, plan: Plan) -> Outcome:
        if plan.refused is not None:
            raise ValueError("a refused plan cannot be applied")
        started = self._record(plan, "started", "applying")["id"]

        async def on_host(steps: list[HostStep]) -> None:
            """A host's targets one after another: each apply moves the host's
            ledger on (a failure is recorded too), so the next expects the
            version the last one left, as its answer says or, after a failure,
            as a fresh preview finds: only someone else's change between the
            preview and the apply is a conflict."""
            expect: int | None = None
            timeout = self._timeout(plan.request)
            for n, step in enumerate(steps):
                backend = self.backend(step.backend)
                if n and expect is None:
                    again = await self._ask(backend, plan.request, step, "preview", None, None, timeout)
                    expect = again.ledger_version
                version = expect if expect is not None else step.preview.ledger_version
                step.result = await self._ask(backend, plan.request, step, "apply", started, version, timeout)
                expect = step.result.ledger_version if step.result.ok else None

        by_host: dict[str, list[HostStep]] = {}
        for step in plan.steps:
            by_host.setdefault(step.host.name, []).append(step)
        try:
            await _bounded([on_host(steps) for steps in by_host.values()])
        except asyncio.CancelledError:
            self._record(plan, "interrupted", INTERRUPTED_WHILE_APPLYING, ref=started)
            raise
        good = [s for s in plan.steps if s.result is not None and s.result.ok]
        bad = [s for s in plan.steps if s not in good]
        if not bad:
            status, message = "applied", f"{plan.request.kind} done on {len(good)} target(s)"
        else:
            status = "partial" if good else "failed"
            reasons = "; ".join(f"{s.target.label()}: {_why(s.result)}" for s in bad)
            message = f"{plan.request.kind} failed on {len(bad)} of {len(plan.steps)} target(s): {reasons}"
        record = self._record(plan, status, message, ref=started)
        return Outcome(status, message, record["id"], plan)

    # -- helpers --------------------------------------------------------------
    async def _previews(self, request: ActionRequest) -> list[HostStep]:
        steps: list[HostStep] = []
        for target in request.targets:
            host = self.config.host(target.host)
            if host is None:  # targets are parsed against the config; this is a caller's bug
                raise ValueError(f"unknown host {target.host!r}")
            steps.append(HostStep(target, host, self.config.backend_of(host), HostAnswer(ok=False)))

        async def one(step: HostStep) -> None:
            backend = self.backend(step.backend)
            step.preview = await self._ask(backend, request, step, "preview", None, None, self._timeout(request))

        await _bounded([one(s) for s in steps])
        return steps

    def _term_wait(self, request: ActionRequest) -> float:
        """The kill's grace: the request's (0 included), else the config's."""
        return self.config.actions.term_wait_s if request.term_wait_s is None else request.term_wait_s

    def _timeout(self, request: ActionRequest) -> float:
        wait = self._term_wait(request)
        return 2 * self.config.ssh.connect_timeout_s + wait * 2 + 30.0

    async def _ask(
        self,
        backend: ActionBackend,
        request: ActionRequest,
        step: HostStep,
        phase: Literal["preview", "apply"],
        audit_id: str | None,
        expect_version: int | None,
        timeout: float,
    ) -> HostAnswer:
        """One preview or apply of one host step; a request that cannot be made
        (the model refuses it, as the host would) is that host's failed answer."""
        try:
            req = self.host_request(request, step, phase, audit_id, expect_version)
        except ValidationError as exc:
            return HostAnswer.failure(f"the request was not sent: {request_problem(exc)}", phase)
        if phase == "preview":
            return await backend.preview(step.host, req, timeout)
        return await backend.apply(step.host, req, step.preview, timeout)

    def host_request(
        self,
        request: ActionRequest,
        step: HostStep,
        phase: Literal["preview", "apply"],
        audit_id: str | None,
        expect_version: int | None,
    ) -> HostRequest:
        """What the step's backend is handed (and an agent sent): docs/actions.md's request."""
        target, preview = step.target, step.preview
        pid_start = None
        if phase == "apply" and target.pid is not None:
            pid_start = next((a.pid_start for a in preview.affected if a.pid == target.pid), None)
        op = self.operator
        return HostRequest(
            v=ACTION_PROTOCOL,
            phase=phase,
            action=request.kind,
            gpus=list(target.gpus),
            pid=target.pid,
            pid_start=pid_start,
            backend=step.backend,
            slurm_node=step.host.slurm_node or step.host.name,
            operator=HostOperator(user=op.user, host=op.host, keys=list(op.keys)),
            reason=request.reason,
            ticket=request.ticket,
            holder=request.holder or (op.user if request.kind in ("reserve", "reserve-node") else None),
            until=request.until,
            term_wait_s=self._term_wait(request),
            kill_after=request.kill_after,
            expect_version=expect_version if phase == "apply" else None,
            audit_id=audit_id,
        )

    def _record(self, plan: Plan, status: str, message: str, ref: str | None = None) -> dict[str, Any]:
        r = plan.request
        entry: dict[str, Any] = {
            "operator": self.operator.as_dict(),
            "action": r.kind,
            "targets": [t.label() for t in r.targets],
            "reason": _on_record(r.reason, MAX_REASON_CHARS),
            "ticket": None if r.ticket is None else _on_record(r.ticket, MAX_TICKET_CHARS),
            "for": r.holder,
            "until": r.until,
            "force": r.force,
            "kill_after": r.kill_after,
            "status": status,
            "message": message,
        }
        if ref is not None:
            entry["ref"] = ref
        hosts = {s.target.label(): _summary(s.result or s.preview) for s in plan.steps}
        if hosts:
            entry["hosts"] = hosts
        return self.audit.append(entry)


def _on_record(text: str, cap: int) -> str:
    """A refused over-long text is audited by its start and its length, so
    that one paste cannot make the audit log carry megabytes."""
    if len(text) <= cap:
        return text
    return f"{text[:cap]}... ({len(text)} characters in all)"


def _summary(answer: HostAnswer) -> dict[str, Any]:
    return {
        "phase": answer.phase,
        "ok": answer.ok,
        "error": answer.error,
        "conflict": answer.conflict,
        "ledger_version": answer.ledger_version,
        "commands": answer.commands,
        "done": answer.done,
        "affected": [a.model_dump(exclude_none=True) for a in answer.affected],
        **({"node": answer.node.model_dump()} if answer.node is not None else {}),
    }


def _why(answer: HostAnswer | None) -> str:
    if answer is None:
        return "no answer"
    if answer.conflict:  # the hosts' own words end in "preview again" (older agents' too)
        error = answer.error or "changed since your preview"
        return f"conflict: {error}" + ("" if error.endswith("preview again") else ": preview again")
    return answer.error or "failed"


async def _bounded(jobs: list[Any]) -> None:
    gate = asyncio.Semaphore(MAX_PARALLEL_HOSTS)

    async def run(job: Any) -> None:
        async with gate:
            await job

    await asyncio.gather(*(run(j) for j in jobs))
