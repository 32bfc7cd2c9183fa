"""What holds a GPU, and whether it is held while idle: judged from its
sample and its history, by the allocation panel and the health rules alike
(so this knows nothing of the screen).

A GPU is "free" with no process and under 1 GiB of memory used, "busy" while
it computes (in MIG mode: while any of its instances runs a process or holds
memory), and "idle, holding memory" once something has held it while its
utilisation stayed at or under 5 % for ``idle_holding_s`` (15 min by
default). That is judged from the history, not from one sample: a job
between two steps is not wasting its GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gputui.fleet.history import GpuHistory
from gputui.frames import GpuSample
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


@dataclass(frozen=True)
class GpuAllocation:
    state: Alloc
    words: str  # what the State column says
    ledger: LedgerMark | None = None


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
        return GpuAllocation(Alloc.IDLE_HOLDING, "idle, holding memory")
    return GpuAllocation(Alloc.IDLE, f"idle (for {age_words(idle_s)})")


def in_use(g: GpuSample, source: str | None) -> bool:
    """Whether the GPU is taken: it runs processes, or, where ``source`` cannot list them, it has a
    holder or holds memory (the overview's "busy" counts)."""
    if g.processes:
        return True
    if source not in NO_PROCESS_LIST:
        return False
    return g.holder is not None or (g.mem_used_mib or 0) >= FREE_MEM_MIB
