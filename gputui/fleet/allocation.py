"""What holds a GPU, and whether it is held while idle: judged from its
sample and its history, by the allocation panel and the health rules alike
(so this knows nothing of the screen).

A GPU is "free" with no process and under 1 GiB of memory used, "busy" while
it computes (in MIG mode: while any of its instances runs a process or holds
memory), and "idle, holding memory" once something has held it while its
utilisation stayed at or under 5 % for ``idle_holding_s`` (15 min by
default). That is judged from the history, not from one sample: a job
between two steps is not wasting its GPU.

The host's ledger (reservations, drains; docs/actions.md) rides on each
sample and overrides those words (:func:`ledger_of`, :func:`with_ledger`):
the allocation panel shows them, and ``gputui snapshot`` and ``gputui check``
print them as one JSON object per GPU (:func:`allocation_json`), from the
same code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gputui.fleet.history import GpuHistory
from gputui.frames import GpuSample, ProcessInfo

if TYPE_CHECKING:
    from gputui.fleet.store import HostRecord
    from gputui.slurm.model import SlurmView
from gputui.render import age_words

FREE_MEM_MIB = 1024  # a CUDA context alone holds a few hundred MiB
IDLE_UTIL_PCT = 5.0
# Sources that cannot list a GPU's processes (dcgm-exporter through Prometheus): there a GPU
# is in use when its source names a holder (a pod) or it holds memory, not when a list is empty.
NO_PROCESS_LIST = frozenset({"prometheus"})
DEFAULT_IDLE_HOLDING_S = 900.0
RECENT_S = 60.0  # read from the per-sample tier: the coarse one lags by up to a rollup


class Alloc(StrEnum):
    FREE = "free"
    BUSY = "busy"
    IDLE = "idle"  # idle while holding, for less than the threshold so far
    IDLE_HOLDING = "idle, holding memory"
    LOST = "lost"


@dataclass(frozen=True)
class LedgerMark:
    """One GPU's (or the node's) entry in the host's ledger, as the sample summarises it."""

    state: str  # "reserved" or "drained"
    holder: str | None = None  # reserved: for whom
    by: str | None = None
    until: float | None = None  # epoch seconds
    reason: str | None = None
    since: float | None = None  # epoch seconds
    ticket: str | None = None


@dataclass(frozen=True)
class GpuAllocation:
    state: Alloc
    words: str  # what the State column says
    ledger: LedgerMark | None = None
    # Idle or idle-holding: for how long, by the history (the idle-holding alert says it, and
    # reading an hour's history again for it was half of judging such a GPU).
    idle_s: float | None = None


def idle_run(values: list[float | None]) -> int:
    """How many of the newest values in a row are at or under the idle threshold (a gap ends the run)."""
    n = 0
    for v in reversed(values):
        if v is None or v > IDLE_UTIL_PCT:
            break
        n += 1
    return n


def idle_for_s(hist: GpuHistory | None, limit_s: float) -> float:
    """Seconds the GPU has been idle, as far as the history shows (up to about ``limit_s``).

    The last minute comes from the per-sample tier; only if all of it was
    idle is the longer (maybe coarser) series asked how far back it goes.
    """
    if hist is None:
        return 0.0
    recent = hist.series("util_pct", min(RECENT_S, limit_s))
    run = idle_run(recent)
    recent_s = run * hist.step_s(min(RECENT_S, limit_s))
    if run < len(recent) or limit_s <= RECENT_S:
        return recent_s
    longer = hist.series("util_pct", limit_s)
    return max(recent_s, idle_run(longer) * hist.step_s(limit_s))


def allocation(g: GpuSample, hist: GpuHistory | None, idle_holding_s: float) -> GpuAllocation:
    """The state of one GPU, from its sample and its history."""
    if g.lost:
        return GpuAllocation(Alloc.LOST, "lost")
    holding = bool(g.processes) or (g.mem_used_mib or 0) >= FREE_MEM_MIB
    if g.mig:  # MIG mode: busy while any instance runs something; no utilisation to judge idleness by
        used = sum(1 for m in g.mig if m.pids or (m.mem_used_mib or 0) >= FREE_MEM_MIB)
        if used or holding:
            return GpuAllocation(Alloc.BUSY, f"in use: {used} of {len(g.mig)} MIG instances")
        return GpuAllocation(Alloc.FREE, "free")
    if g.util_pct is None:  # MIG, or a driver that cannot say: no basis to call it idle
        return GpuAllocation(Alloc.BUSY, "in use (util N/A)") if holding else GpuAllocation(Alloc.FREE, "free")
    if g.util_pct > IDLE_UTIL_PCT:
        return GpuAllocation(Alloc.BUSY, "busy")
    if not holding:
        return GpuAllocation(Alloc.FREE, "free")
    idle_s = idle_for_s(hist, idle_holding_s)
    if idle_s >= idle_holding_s:
        return GpuAllocation(Alloc.IDLE_HOLDING, "idle, holding memory", idle_s=idle_s)
    return GpuAllocation(Alloc.IDLE, f"idle (for {age_words(idle_s)})", idle_s=idle_s)


def in_use(g: GpuSample, source: str | None) -> bool:
    """Whether the GPU is taken: it runs processes, or, where ``source`` cannot list them, it has a
    holder or holds memory (the overview's "busy" counts)."""
    if g.processes:
        return True
    if source not in NO_PROCESS_LIST:
        return False
    return g.holder is not None or (g.mem_used_mib or 0) >= FREE_MEM_MIB


def in_use_count(gpus: Sequence[GpuSample], source: str | None) -> int:
    """How many of ``gpus`` are :func:`in_use`: where ``source`` lists processes, those with any,
    counted in one comprehension (the overview's figures count a host's GPUs at each of its frames)."""
    if source not in NO_PROCESS_LIST:
        return len([g for g in gpus if g.processes])
    return len([g for g in gpus if in_use(g, source)])


@dataclass(frozen=True)
class Ledger:
    """A host's ledger as its latest sample reports it: holds by GPU index, the node's, or why it is unreadable."""

    gpus: dict[int, LedgerMark]
    node: LedgerMark | None
    error: str | None = None
    version: int | None = None


NO_LEDGER = Ledger({}, None)


def ledger_of(record: HostRecord) -> Ledger:
    """The ledger of the latest sample; empty when the host holds nothing (or sent none)."""
    summary = record.ledger
    if summary is None:
        return NO_LEDGER
    gpus = {
        int(key): LedgerMark(g.state, g.holder, g.by, g.until, g.reason, g.since, g.ticket)
        for key, g in summary.gpus.items()
        if key.isdigit()
    }
    n = summary.node
    node = LedgerMark(n.state, by=n.by, reason=n.reason, since=n.since, ticket=n.ticket) if n is not None else None
    return Ledger(gpus, node, summary.error, summary.version)


def until_words(epoch: float, now: float | None = None) -> str:
    """A local time, with the date only when it is not today."""
    moment, today = time.localtime(epoch), time.localtime(time.time() if now is None else now)
    same_day = moment.tm_yday == today.tm_yday and moment.tm_year == today.tm_year
    return time.strftime("%H:%M" if same_day else "%b %d %H:%M", moment)


def short(text: str | None, width: int = 40) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def mark_words(mark: LedgerMark) -> str:
    """What the State column says for a ledger entry."""
    if mark.state == "reserved":
        words = "reserved" + (f" for {mark.holder}" if mark.holder else "")
        return words + (f" until {until_words(mark.until)}" if mark.until is not None else "")
    return f"{mark.state}: {short(mark.reason)}" if mark.reason else mark.state


def with_ledger(base: GpuAllocation, mark: LedgerMark | None) -> GpuAllocation:
    """The ledger's word first, what runs on the GPU (if anything) in brackets."""
    if mark is None or base.state is Alloc.LOST:
        return base
    words = mark_words(mark)
    if base.state is not Alloc.FREE:
        words += f" ({base.words})"
    return GpuAllocation(base.state, words, mark, base.idle_s)


def state_word(a: GpuAllocation) -> str:
    """One word for the state, for scripts and narrow columns: free, busy, idle,
    idle-holding, lost, or the ledger's (reserved, drained). A lost GPU is lost
    whatever the ledger holds for it, as in the panel."""
    if a.state is Alloc.LOST:
        return "lost"
    if a.ledger is not None:
        return a.ledger.state
    return "idle-holding" if a.state is Alloc.IDLE_HOLDING else a.state.value


def job_words(processes: list[ProcessInfo]) -> str:
    seen: dict[str, None] = {}
    for p in processes:
        if p.slurm_job:
            seen[f"slurm {p.slurm_job}"] = None
        if p.container:
            seen[f"ctr {p.container}"] = None
    return ", ".join(seen)


def holder_words(g: GpuSample, mark: LedgerMark | None = None) -> str | None:
    """Who holds the GPU: whom a reservation is for; else the users of its
    processes, else their Slurm jobs / containers, else the holder its source
    names (a pod); None when nothing says."""
    if mark is not None and mark.state == "reserved" and mark.holder:
        return mark.holder
    users = sorted({p.user for p in g.processes if p.user})
    return ", ".join(users) or job_words(g.processes) or g.holder or None


def gpu_allocation(record: HostRecord, gpu: GpuSample, ledger: Ledger, idle_holding_s: float) -> GpuAllocation:
    """The GPU's state as the allocation panel shows it: from its sample and history, the ledger over it."""
    return with_ledger(allocation(gpu, record.history.get(gpu.index), idle_holding_s), ledger.gpus.get(gpu.index))


def allocation_json(
    record: HostRecord, gpu: GpuSample, ledger: Ledger, idle_holding_s: float, slurm: SlurmView | None = None
) -> dict[str, Any]:
    """The GPU's ``allocation`` object (docs/snapshot.md), one shape for ``snapshot`` and ``check``
    so that a script reads both alike. ``slurm``: the site's Slurm, for the job it gave the GPU."""
    a = gpu_allocation(record, gpu, ledger, idle_holding_s)
    mark = a.ledger
    job = slurm.job_on(record.name, gpu.index) if slurm is not None else None
    return {
        "state": state_word(a),
        "holder": holder_words(gpu, mark) or (job.user if job is not None else None),
        "reason": mark.reason if mark else None,
        "ticket": mark.ticket if mark else None,
        "since": mark.since if mark else None,
        "until": mark.until if mark else None,
        "by": mark.by if mark else None,
        "version": ledger.version,
        "slurm_job": job.as_dict(time.time()) if job is not None else None,
    }


def node_json(mark: LedgerMark | None) -> dict[str, Any] | None:
    """The node's entry in the ledger (drain-node), or None when the ledger holds none."""
    if mark is None:
        return None
    return {"state": mark.state, "reason": mark.reason, "ticket": mark.ticket, "since": mark.since, "by": mark.by}
