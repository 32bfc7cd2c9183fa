"""The preview and the outcome as text, for the terminal and for the UI.

Commands are shown as ``shlex.join`` would type them, so what the operator
reads is exactly what would run, quotes and all; they are never run from
this text.
"""

from __future__ import annotations

import datetime as dt
import shlex

from gputui.actions.guard import HostStep, Outcome, Plan


def when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def plan_lines(plan: Plan) -> list[str]:
    r = plan.request
    lines = [f"{r.kind} {' '.join(t.label() for t in r.targets)}  by {plan.operator.label()}"]
    lines.append(f"  reason: {r.reason!r}" + (f"  ticket: {r.ticket}" if r.ticket else ""))
    if r.kind == "reserve":
        lines.append(f"  for: {r.holder or plan.operator.user}  until: {when(r.until)}")
    if r.kind == "kill":
        lines.append(f"  SIGTERM, wait {r.term_wait_s or 0:.0f}s" + (", then SIGKILL" if r.kill_after else ", no SIGKILL"))
    if r.force:
        lines.append("  --force: past the blast-radius limit")
    for step in plan.steps:
        lines += step_lines(step)
    if plan.refused:
        lines.append(f"REFUSED: {plan.refused}")
    return lines


def step_lines(step: HostStep) -> list[str]:
    p = step.preview
    head = f"{step.target.label()}  backend {step.backend}"
    if p.ledger_version is not None:
        head += f", ledger v{p.ledger_version}"
    lines = [head]
    for g in p.gpus:
        holder = f" ({g.holder})" if g.holder else ""
        lines.append(f"  GPU {g.index} {g.uuid or ''}  now {g.state}{holder}")
    lines += [f"  will run: {shlex.join(cmd)}" for cmd in p.commands]
    lines += [f"  will: {s}" for s in p.steps]
    for a in p.affected:
        job = f", Slurm job {a.job}" if a.job else ""
        gpu = f"GPU {a.gpu}" if a.gpu is not None else "no GPU"
        lines.append(f"  affects: pid {a.pid} user {a.user or '?'} {gpu}{job}: {a.command or '?'}")
    if not p.affected and p.ok:
        lines.append("  affects: no running process")
    lines += [f"  note: {n}" for n in p.notes]
    if not p.ok:
        lines.append(f"  refused: {p.error}")
    return lines


def outcome_lines(outcome: Outcome) -> list[str]:
    lines = [f"{outcome.status}: {outcome.message}  (audit {outcome.audit_id})"]
    for step in outcome.plan.steps:
        if step.result is None:
            continue
        mark = "ok" if step.result.ok else "FAILED"
        lines.append(f"  {step.target.label()}: {mark}" + (f": {step.result.error}" if step.result.error else ""))
        lines += [f"    {d}" for d in step.result.done]
        lines += [f"    note: {n}" for n in step.result.notes]
    return lines
