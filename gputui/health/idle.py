"""The idle-holding rule: a GPU held (processes or memory) while nothing runs on it.

The allocation panel's judgement is reused as it is (:func:`allocation`),
so that the panel and the alert never disagree about the history. Its
answer needs ``idle_holding_minutes`` of history, which a one-shot
``gputui check`` or a dashboard opened a minute ago does not have.

For that case one more piece of evidence is honest to use: the processes'
start times. When utilisation was at or under 5 % now *and in every sample
seen*, and every process holding the GPU started more than
``idle_holding_minutes`` ago, the GPU has been held at least that long, and
everything we saw of it was idle. That is a likely waste, not a proven one
(a job may have computed before we looked), so it is reported as INFO with
its basis spelt out; once the history itself covers the span, the same alert
becomes a WARNING.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from gputui.config import Thresholds
from gputui.fleet.allocation import FREE_MEM_MIB, IDLE_UTIL_PCT, Alloc, allocation, idle_run
from gputui.fleet.history import METRICS, GpuHistory
from gputui.fleet.store import HostRecord
from gputui.frame_columns import GpuColumns
from gputui.frames import GpuSample
from gputui.health.finding import Context, Finding
from gputui.health.model import Severity
from gputui.render import age_words, fmt

_UTIL = METRICS.index("util_pct")


def idle_in_every_sample(hist: GpuHistory | None) -> int:
    """How many samples the history holds if every one of them was idle, else 0."""
    if hist is None:
        return 0
    fine = hist.fine[_UTIL].values()
    if not fine or idle_run(fine) < len(fine):
        return 0
    if hist.fine[_UTIL].count == hist.fine[_UTIL].capacity:  # the fine tier wrapped: the coarse one saw the rest
        coarse = hist.coarse[_UTIL].values()
        if idle_run(coarse) < len(coarse):
            return 0
    return len(fine)


def idle_holding(g: GpuSample, hist: GpuHistory | None, th: Thresholds, now: float, job: str | None = None) -> Finding | None:
    """The finding for one GPU, or None: WARNING from history, INFO from process age (see the module's note).
    ``job``: the Slurm job Slurm gave the GPU to, named in the title: it is what an operator cancels."""
    if g.util_pct is None or g.util_pct > IDLE_UTIL_PCT:
        return None  # busy, or no utilisation to judge by (MIG): as allocation() would say, sooner
    limit_s = th.idle_holding_minutes * 60.0
    judged = allocation(g, hist, limit_s)
    state = judged.state
    if state is Alloc.IDLE_HOLDING and judged.idle_s is not None:  # always, for that state: how long, from the history
        idle_s = judged.idle_s
        basis = f"history: idle for at least {age_words(idle_s)}"
        title = f"GPU {g.index} idle, holding memory (<= {IDLE_UTIL_PCT:.0f}% util for {age_words(idle_s)}+)"
        return _finding(g, Severity.WARNING, title, basis, job, since=now - idle_s)
    if state is not Alloc.IDLE:
        return None
    # Idle for less than the limit by the history: only the processes' age can tell more. Asked
    # before the history is read whole, as a GPU idle a while is, each pass, until it has been long.
    starts = [p.started_at for p in g.processes]
    if not starts or any(t is None for t in starts):
        return None
    held_since = max(t for t in starts if t is not None)  # the newest process: every one was there since (cautious)
    if now - held_since < limit_s:
        return None
    seen = idle_in_every_sample(hist)
    if not seen:
        return None
    basis = f"processes running {age_words(now - held_since)}; idle in all {seen} samples seen"
    title = f"GPU {g.index} holding memory, idle in every sample seen (process running {age_words(now - held_since)})"
    return _finding(g, Severity.INFO, title, basis, job, since=held_since)


def _finding(g: GpuSample, severity: Severity, title: str, basis: str, job: str | None, since: float) -> Finding:
    """The idle-holding finding for ``g``: what it holds, for whom, on what ``basis``."""
    users = sorted({p.user for p in g.processes if p.user})
    evidence = {
        "util": fmt(g.util_pct, "{}%"),
        "memory held": fmt(g.mem_used_mib, "{:,} MiB"),
        "processes": ", ".join(str(p.pid) for p in g.processes) or "none listed",
    }
    if users:
        evidence["users"] = ", ".join(users)
    if job is not None:
        evidence["Slurm job"] = job
        title = f"{title}: {job}"
    evidence["basis"] = basis
    advice = "ask its owner to release it (end the idle process) or reclaim it: others are waiting for GPUs"
    return Finding("idle-holding", severity, g.index, title, advice, evidence, since=since)


def idle_findings(record: HostRecord, ctx: Context) -> list[Finding]:
    """What ``gpu_findings`` finds on a host whose GPUs are all calm and whose counters did not climb:
    the idle-holding findings, asked only of the GPUs that may be holding idle."""
    c = record.columns
    utils = c.util_pct
    if None not in utils and (not utils or min(cast("Sequence[int]", utils)) > IDLE_UTIL_PCT):
        return []  # every GPU busy (most hosts, most seconds): told in C, none asked one by one
    found = (idle_finding(record, place, ctx) for place in range(len(c.indices)) if may_hold_idle(c, place))
    return [f for f in found if f is not None]


def may_hold_idle(c: GpuColumns, place: int) -> bool:
    """Whether the idle-holding rule may speak of the GPU at ``place``, by its columns: it is idle and
    holds something (processes, or memory), as ``allocation`` asks before it reads any history. Any
    other GPU it passes over, lost, busy, free or without utilisation to judge by."""
    util = c.util_pct[place]
    if util is None or util > IDLE_UTIL_PCT or c.lost[place]:
        return False
    return c.running[place] or (c.mem_used_mib[place] or 0) >= FREE_MEM_MIB


def idle_finding(record: HostRecord, place: int, ctx: Context) -> Finding | None:
    """The idle-holding rule on the GPU at ``place``, made alone, not with the host's every GPU."""
    g = record.gpu_at(place)
    return idle_holding(g, record.history.get(g.index), ctx.thresholds, ctx.now, ctx.jobs.get(g.index))
