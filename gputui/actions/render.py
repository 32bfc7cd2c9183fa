"""The preview and the outcome as text, for the terminal and for the UI.

Commands are shown as ``shlex.join`` would type them, so what the operator
reads is exactly what would run, quotes and all; they are never run from
this text.
"""

from __future__ import annotations

import datetime as dt
import math
import shlex
import time

from gputui.actions.guard import HostStep, Outcome, Plan
from gputui.actions.model import Affected, GpuState

LEDGER_STATES = ("free", "reserved", "drained")


def when(epoch: float | None) -> str:
    """A local time with its zone; a value no clock can show is shown as it is."""
    if epoch is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    except (OverflowError, OSError, ValueError):
        return f"{epoch!r} (not a time)"


def until_words(epoch: float | None, now: float | None = None) -> str:
    """``2026-12-01 08:00 CET (in 2h 5m)``: the local time, and how far off it is."""
    if epoch is None:
        return "no end"
    return f"{when(epoch)} ({relative(epoch - (time.time() if now is None else now))})"


def relative(seconds: float) -> str:
    """``in 2h 5m``, ``in 3d 4h`` or ``10m ago``, to the minute."""
    if not math.isfinite(seconds):
        return "never"
    minutes = round(abs(seconds) / 60)
    if minutes == 0:
        return "in under a minute" if seconds >= 0 else "just now"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins and not days else ""]
    words = " ".join(p for p in parts if p)
    return f"in {words}" if seconds > 0 else f"{words} ago"


def plan_lines(plan: Plan) -> list[str]:
    r = plan.request
    lines = [f"{r.kind} {' '.join(t.label() for t in r.targets)}  by {plan.operator.label()}"]
    lines.append(f"  reason: {r.reason!r}" + (f"  ticket: {r.ticket}" if r.ticket else ""))
    if r.kind in ("reserve", "reserve-node"):
        lines.append(f"  for: {r.holder or plan.operator.user}  until: {until_words(r.until)}")
    if r.kind == "kill":
        lines.append(f"  {kill_words(r.term_wait_s, r.kill_after)}")
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
    lines += [gpu_line(g, p.affected) for g in p.gpus]
    lines += [f"  will run: {shlex.join(cmd)}" for cmd in p.commands]
    lines += [f"  will: {s}" for s in p.steps]
    lines += [affects_line(a) for a in p.affected]
    if p.node is not None and p.ok:  # a control-plane backend: the host itself is not asked
        lines.append("  affects: no GPU or process is touched; the node's running jobs are not listed here")
    elif not p.affected and p.ok:
        lines.append("  affects: no running process")
    lines += [f"  note: {n}" for n in p.notes]
    if not p.ok:
        lines.append(f"  refused: {p.error}")
    return lines


def kill_words(term_wait_s: float | None, kill_after: bool) -> str:
    if not term_wait_s and kill_after:
        return "SIGTERM, then SIGKILL at once"
    return f"SIGTERM, wait {term_wait_s or 0:g}s" + (", then SIGKILL" if kill_after else ", no SIGKILL")


def gpu_line(g: GpuState, affected: list[Affected]) -> str:
    """A GPU as the host answered: what runs on it (from ``affected``), and its ledger state.

    The ledger's "free" means nobody holds the GPU, not that nothing runs on it."""
    holder = f" ({g.holder})" if g.holder else ""
    if g.state not in LEDGER_STATES:  # kill: "busy", held by the process's user
        return f"  GPU {g.index} {g.uuid or ''}  {g.state}{holder}"
    pids = [a.pid for a in affected if a.gpu == g.index]
    use = f"busy: {len(pids)} process{'es' if len(pids) > 1 else ''} (pid {', '.join(map(str, pids))}); " if pids else ""
    return f"  GPU {g.index} {g.uuid or ''}  {use}ledger: {g.state}{holder}"


def affects_line(a: Affected) -> str:
    job = f", Slurm job {a.job}" if a.job else ""
    gpu = f"GPU {a.gpu}" if a.gpu is not None else "no GPU"
    if a.user is None and a.command is None and a.pid_start is None:
        unseen = "user and command unknown: the host's /proc has no such pid (exited, another PID namespace, or simulated)"
        return f"  affects: pid {a.pid} {gpu}{job}: {unseen}"
    return f"  affects: pid {a.pid} user {a.user or 'unknown'} {gpu}{job}: {a.command or '(command unknown)'}"


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


def outcome_words(outcome: Outcome) -> str:
    """The outcome in one line, for the dialog's status and the notification after it; a
    lost race says who holds the targets now rather than the hosts' raw errors."""
    conflict = conflict_words(outcome)
    if conflict is None:
        return f"{outcome.status}: {outcome.message}"
    return conflict if outcome.status == "failed" else f"{outcome.status}: {conflict}"


def conflict_words(outcome: Outcome) -> str | None:
    """The line an operator who lost a race reads: which targets changed since their
    preview, who holds them now (the host's answer), and what to do; None when no
    target was in conflict."""
    lost = [s for s in outcome.plan.steps if s.result is not None and s.result.conflict]
    if not lost:
        return None
    return "changed since your preview: " + "; ".join(now_words(s) for s in lost) + ": preview again"


def now_words(step: HostStep) -> str:
    """``a:0 is now reserved for alice``; a target whose answer names no GPUs (a
    Slurm node, an older agent) in the host's own words."""
    label, result = step.target.label(), step.result
    if result is None or not result.gpus:
        error = (result.error if result is not None else None) or "changed"
        return f"{label}: {error.removesuffix(': preview again')}"
    if len(result.gpus) == 1:
        return f"{label} is now {held_words(result.gpus[0])}"
    return f"{label} is now " + ", ".join(f"GPU {g.index} {held_words(g)}" for g in result.gpus)


def held_words(g: GpuState) -> str:
    """A GPU's ledger state as the host answered it: free, reserved for whom, drained by whom."""
    if g.state == "free" or not g.holder:
        return g.state
    return f"{g.state} {'for' if g.state == 'reserved' else 'by'} {g.holder}"
