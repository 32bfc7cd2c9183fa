"""Tab 3, Allocation: who holds each GPU, and which GPUs are held but idle.

A GPU is "free" with no process and under 1 GiB of memory used, "busy" while
it computes, and "idle, holding memory" once something has held it while its
utilisation stayed at or under 5 % for ``idle_holding_s`` (15 min by
default). That is judged from the history, not from one sample: a job
between two steps is not wasting its GPU. Until the history is that long,
the GPU reads "idle (for Xm)", so nobody is accused on too little evidence.

The host's ledger (reservations, drains; docs/actions.md) rides on each
sample when not empty and overrides those words: "reserved for bob until
14:00", "drained: fan noise (busy)". What runs on a GPU is kept in brackets,
since a drained GPU still running a job is exactly what an operator needs to
see. ``space`` marks rows, so one action can take several GPUs. A GPU in MIG
mode has a row per instance under its own (profile, memory, who runs there):
an action takes whole GPUs, so instance rows cannot be marked.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from gputui.fleet.allocation import (
    DEFAULT_IDLE_HOLDING_S,
    IDLE_UTIL_PCT,
    NO_LEDGER,
    Alloc,
    GpuAllocation,
    Ledger,
    LedgerMark,
    allocation,
    job_words,
    ledger_of,
    mark_words,
    short,
    until_words,
    with_ledger,
)
from gputui.fleet.mig import MigInstance, mig_instances
from gputui.frames import GpuSample
from gputui.render import age_words, fmt
from gputui.slurm.model import SlurmJob
from gputui.ui.panels.base import HostPanel, HostView
from gputui.ui.widgets.palette import Palette
from gputui.ui.widgets.table_sync import Cell, sync_rows

__all__ = [  # the ledger overlay lives in gputui.fleet.allocation; these names stay importable from here
    "NO_LEDGER",
    "AllocationPanel",
    "Ledger",
    "ledger_of",
    "mark_words",
    "short",
    "until_words",
    "with_ledger",
]

COLUMNS = ("GPU", "State", "Memory used", "Util", "Users", "PIDs", "Slurm jobs / containers")


def state_style(state: Alloc, pal: Palette, mark: LedgerMark | None = None) -> Style:
    if mark is not None and state is not Alloc.LOST:
        return pal.warn if mark.state == "drained" else pal.accent
    return {
        Alloc.FREE: pal.ok,
        Alloc.BUSY: pal.text,
        Alloc.IDLE: pal.text,
        Alloc.IDLE_HOLDING: pal.warn,
        Alloc.LOST: pal.bad,
    }[state]


def jobs_cell(g: GpuSample, job: SlurmJob | None) -> str:
    """The Slurm job Slurm gave the GPU, else the jobs and containers its processes are in, else
    its source's holder (a pod, where the source lists no processes)."""
    if job is not None:
        return job.label()
    return job_words(g.processes) or (f"pod {g.holder}" if g.holder else "")


class AllocationPanel(HostPanel):
    BINDINGS = [Binding("space", "toggle_mark", "Mark", key_display="space")]

    def __init__(self, idle_holding_s: float = DEFAULT_IDLE_HOLDING_S, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.idle_holding_s = idle_holding_s
        self.states: dict[int, GpuAllocation] = {}  # as last shown, for tests and the summary
        self.node: LedgerMark | None = None
        self.ledger_error: str | None = None
        self.marked: set[int] = set()  # GPUs marked with space: the next action takes them all
        self.last_view: HostView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="alloc-summary")
        yield DataTable(id="alloc", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#alloc", DataTable).add_columns(*COLUMNS)

    # -- selection -------------------------------------------------------------
    def cursor_gpu(self) -> int | None:
        table = self.query_one("#alloc", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None and key.isdigit() else None

    def selected_gpus(self) -> list[int]:
        """The marked GPUs, or the one under the cursor when none is marked."""
        marked = sorted(i for i in self.marked if i in self.states)
        if marked:
            return marked
        gpu = self.cursor_gpu()
        return [] if gpu is None else [gpu]

    def action_toggle_mark(self) -> None:
        gpu = self.cursor_gpu()
        if gpu is not None:
            self.marked ^= {gpu}
            if self.last_view is not None:
                self.show(self.last_view)

    def clear_marks(self) -> None:
        self.marked.clear()
        if self.last_view is not None:
            self.show(self.last_view)

    # -- drawing ---------------------------------------------------------------
    def show(self, view: HostView) -> None:
        self.last_view = view
        pal = view.pal
        record = view.record
        ledger = ledger_of(record)
        marks, self.node, self.ledger_error = ledger.gpus, ledger.node, ledger.error
        rows: dict[str, tuple[Cell, ...]] = {}
        self.states = {}
        for g in view.gpus():
            state = with_ledger(allocation(g, record.history.get(g.index), self.idle_holding_s), marks.get(g.index))
            self.states[g.index] = state
            style = pal.dim if view.stale else state_style(state.state, pal, state.ledger)
            users = sorted({p.user for p in g.processes if p.user})
            rows[str(g.index)] = (
                f"* {g.index}" if g.index in self.marked else f"  {g.index}",
                Text(state.words, style=style),
                "" if g.lost else Text(fmt(g.mem_used_mib, "{:,} MiB"), justify="right"),
                "" if g.lost else Text(fmt(g.util_pct, "{}%"), justify="right"),
                ", ".join(users),
                ", ".join(str(p.pid) for p in g.processes),
                jobs_cell(g, view.slurm_job(g.index)),
            )
            for m in mig_instances(record, g):
                rows[f"{g.index}/{m.index}"] = self.instance_row(m, g, view)
        sync_rows(self.query_one("#alloc", DataTable), rows)
        self.query_one("#alloc-summary", Static).update(self.summary(pal))

    @staticmethod
    def instance_row(m: MigInstance, g: GpuSample, view: HostView) -> tuple[Cell, ...]:
        """A MIG instance under its GPU: what runs on that slice of it."""
        pal = view.pal
        procs = [p for p in g.processes if m.pids and p.pid in m.pids]
        state = "?" if m.pids is None else "busy" if m.busy else "free"
        style = pal.dim if view.stale else pal.ok if state == "free" else pal.text
        branch = "`-" if view.ascii else "└"
        return (
            Text(f"  {branch} {m.label}", style=pal.dim),
            Text(state, style=style),
            Text(f"{fmt(m.mem_used_mib, '{:,}')} / {fmt(m.mem_total_mib, '{:,} MiB')}", justify="right"),
            "",
            ", ".join(sorted({p.user for p in procs if p.user})),
            ", ".join(str(pid) for pid in m.pids or ()),
            job_words(procs),
        )

    def summary(self, pal: Palette) -> Text:
        counts = dict.fromkeys(Alloc, 0)
        for state in self.states.values():
            counts[state.state] += 1
        holding = counts[Alloc.IDLE_HOLDING]
        text = Text()
        if self.node is not None:
            text.append(f"node {mark_words(self.node)}   ", pal.warn)
        if self.ledger_error:
            text.append(f"ledger unreadable: {short(self.ledger_error)}   ", pal.bad)
        text.append_text(
            Text.assemble(
                (f"{counts[Alloc.FREE]} free", pal.ok),
                ", ",
                (f"{counts[Alloc.BUSY]} busy", pal.text),
                ", ",
                (f"{holding} idle-holding", pal.warn if holding else pal.dim),
            )
        )
        if counts[Alloc.IDLE]:
            text.append(f", {counts[Alloc.IDLE]} idle for under {age_words(self.idle_holding_s)}", pal.text)
        if counts[Alloc.LOST]:
            text.append(f", {counts[Alloc.LOST]} lost", pal.bad)
        text.append_text(self.ledger_counts(pal))
        text.append(
            f"   idle-holding: processes or memory held at <= {IDLE_UTIL_PCT:.0f}% util for {age_words(self.idle_holding_s)}",
            pal.dim,
        )
        return text

    def ledger_counts(self, pal: Palette) -> Text:
        """Reserved and drained GPUs, and how many are marked for the next action."""
        held = [s.ledger.state for s in self.states.values() if s.ledger is not None]
        text = Text()
        for state in ("drained", "reserved"):
            if held.count(state):
                text.append(f"; {held.count(state)} {state}", pal.warn if state == "drained" else pal.accent)
        if self.marked:
            text.append(f"; {len(self.marked)} marked", pal.header)
        return text
