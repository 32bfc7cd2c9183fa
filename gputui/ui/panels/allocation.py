"""Tab 3, Allocation: who holds each GPU, and which GPUs are held but idle.

A GPU is "free" with no process and under 1 GiB of memory used, "busy" while
it computes, and "idle, holding memory" once something has held it while its
utilisation stayed at or under 5 % for ``idle_holding_s`` (15 min by
default). That is judged from the history, not from one sample: a job
between two steps is not wasting its GPU. Until the history is that long,
the GPU reads "idle (for Xm)", so nobody is accused on too little evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from gputui.fleet.history import GpuHistory
from gputui.frames import GpuSample
from gputui.render import age_words, fmt
from gputui.ui.palette import Palette
from gputui.ui.panels.base import HostPanel, HostView
from gputui.ui.table_sync import Cell, sync_rows

FREE_MEM_MIB = 1024  # a CUDA context alone holds a few hundred MiB
IDLE_UTIL_PCT = 5.0
DEFAULT_IDLE_HOLDING_S = 900.0
RECENT_S = 60.0  # read from the per-sample tier: the coarse one lags by up to a rollup
COLUMNS = ("GPU", "State", "Memory used", "Util", "Users", "PIDs", "Slurm jobs / containers")


class Alloc(StrEnum):
    FREE = "free"
    BUSY = "busy"
    IDLE = "idle"  # idle while holding, for less than the threshold so far
    IDLE_HOLDING = "idle, holding memory"
    LOST = "lost"


@dataclass(frozen=True)
class GpuAllocation:
    state: Alloc
    words: str  # what the State column says


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


def state_style(state: Alloc, pal: Palette) -> Style:
    return {
        Alloc.FREE: pal.ok,
        Alloc.BUSY: pal.text,
        Alloc.IDLE: pal.text,
        Alloc.IDLE_HOLDING: pal.warn,
        Alloc.LOST: pal.bad,
    }[state]


def job_words(g: GpuSample) -> str:
    seen: dict[str, None] = {}
    for p in g.processes:
        if p.slurm_job:
            seen[f"slurm {p.slurm_job}"] = None
        if p.container:
            seen[f"ctr {p.container}"] = None
    return ", ".join(seen)


class AllocationPanel(HostPanel):
    def __init__(self, idle_holding_s: float = DEFAULT_IDLE_HOLDING_S, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.idle_holding_s = idle_holding_s
        self.states: dict[int, GpuAllocation] = {}  # as last shown, for tests and the summary

    def compose(self) -> ComposeResult:
        yield Static(id="alloc-summary")
        yield DataTable(id="alloc", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#alloc", DataTable).add_columns(*COLUMNS)

    def show(self, view: HostView) -> None:
        pal = view.pal
        record = view.record
        rows: dict[str, tuple[Cell, ...]] = {}
        self.states = {}
        for g in view.gpus():
            state = allocation(g, record.history.get(g.index), self.idle_holding_s)
            self.states[g.index] = state
            style = pal.dim if view.stale else state_style(state.state, pal)
            users = sorted({p.user for p in g.processes if p.user})
            rows[str(g.index)] = (
                str(g.index),
                Text(state.words, style=style),
                "" if g.lost else Text(fmt(g.mem_used_mib, "{:,} MiB"), justify="right"),
                "" if g.lost else Text(fmt(g.util_pct, "{}%"), justify="right"),
                ", ".join(users),
                ", ".join(str(p.pid) for p in g.processes),
                job_words(g),
            )
        sync_rows(self.query_one("#alloc", DataTable), rows)
        self.query_one("#alloc-summary", Static).update(self.summary(pal))

    def summary(self, pal: Palette) -> Text:
        counts = dict.fromkeys(Alloc, 0)
        for state in self.states.values():
            counts[state.state] += 1
        holding = counts[Alloc.IDLE_HOLDING]
        text = Text.assemble(
            (f"{counts[Alloc.FREE]} free", pal.ok),
            ", ",
            (f"{counts[Alloc.BUSY]} busy", pal.text),
            ", ",
            (f"{holding} idle-holding", pal.warn if holding else pal.dim),
        )
        if counts[Alloc.IDLE]:
            text.append(f", {counts[Alloc.IDLE]} idle for under {age_words(self.idle_holding_s)}", pal.text)
        if counts[Alloc.LOST]:
            text.append(f", {counts[Alloc.LOST]} lost", pal.bad)
        text.append(
            f"   idle-holding: processes or memory held at <= {IDLE_UTIL_PCT:.0f}% util for {age_words(self.idle_holding_s)}",
            pal.dim,
        )
        return text
