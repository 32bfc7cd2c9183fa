"""Tab 4, Processes: every process on the host's GPUs, sortable and filterable.

``o`` cycles the sort column and ``O`` reverses it (a click on a header sorts
by that column, a second click reverses); ``u`` filters by (part of) a user name. Rows are
keyed ``gpu:pid`` and updated in place, and the cursor stays on the process
it was on while rows come, go and move: an operator who selected a process
to act on must not find another one under the cursor a second later:
``K`` (the host screen's) kills the process under the cursor.

``g`` groups the rows by Slurm job, container, parent process or user
(:mod:`gputui.ui.panels.proc_groups`), a header row with the group's totals
above its processes; ``space`` on a header marks its processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from gputui.fleet.mig import MigInstance, instance_of, mig_instances
from gputui.frames import ProcessInfo
from gputui.render import NA, age_words, fmt
from gputui.slurm.model import SlurmJob
from gputui.ui.panels.base import HostPanel, HostView
from gputui.ui.panels.proc_groups import GROUPINGS, WORDS, Group, grouped, header_cells, job_words
from gputui.ui.widgets.table_sync import Cell, sync_rows

SortValue = float | str | None


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    value: Callable[[int, ProcessInfo], SortValue] | None  # None: not sortable
    largest_first: bool = False  # the natural direction: numbers that matter sort high first
    text: bool = False  # sorted A to Z


COLUMNS = (
    Column("pid", "PID", lambda gpu, p: p.pid),
    Column("user", "User", lambda gpu, p: p.user, text=True),
    Column("gpu", "GPU", lambda gpu, p: gpu),
    Column("mig", "MIG", None),  # the instance it runs on, for a GPU in MIG mode
    Column("gpu_mem", "GPU mem", lambda gpu, p: p.gpu_mem_mib, largest_first=True),
    Column("sm", "SM", lambda gpu, p: p.sm_pct, largest_first=True),
    Column("mem_bw", "Mem BW", lambda gpu, p: p.mem_bw_pct, largest_first=True),
    Column("cpu", "CPU", lambda gpu, p: p.cpu_pct, largest_first=True),
    Column("rss", "RSS", lambda gpu, p: p.rss_mib, largest_first=True),
    Column("running", "Running", lambda gpu, p: None if p.started_at is None else -p.started_at, largest_first=True),
    Column("job", "Job", None),
    Column("command", "Command", lambda gpu, p: p.command, text=True),
)
BY_KEY = {c.key: c for c in COLUMNS}
SORTABLE = tuple(c.key for c in COLUMNS if c.value is not None)
DEFAULT_SORT = "gpu"


def slurm_job_words(p: ProcessInfo, job: SlurmJob | None) -> str:
    """The process's job with its name, where Slurm gave the GPU to the job its cgroup names (or
    its cgroup names none); else what the cgroup says: a process outside the GPU's job shows as such."""
    if job is not None and p.slurm_job in (None, job.id):
        return f"slurm {job.id} {job.name}"
    return job_words(p)


def jobs_words(view: HostView, wall: float) -> Text:
    """Each Slurm job on the host, with the GPUs Slurm gave it, its partition, elapsed time and limit."""
    text = Text()
    if view.slurm is None:
        return text
    for job in view.slurm.jobs_on(view.record.name):
        gpus = ",".join(str(i) for i in job.gpus.get(view.slurm.node_name(view.record.name), ()))
        text.append(f"   GPU {gpus}: {job.words(wall)}", view.pal.accent)
    return text


def alike(by: str, p: ProcessInfo) -> str | None:
    """What ``U`` and ``J`` group processes by: the user, or the Slurm job (else the container)."""
    if by == "user":
        return p.user
    return job_words(p) or None


def mig_by_gpu(view: HostView) -> dict[int, list[MigInstance]]:
    """Each MIG GPU's instances, worked out once a redraw rather than once a process row."""
    return {g.index: mig_instances(view.record, g) for g in view.gpus() if g.mig}


def mig_label(instances: list[MigInstance] | None, pid: int) -> str:
    """The MIG instance a process runs on ("3g.40gb"), or nothing."""
    m = instance_of(instances, pid) if instances else None
    return m.label if m is not None else ""


def order(procs: dict[str, tuple[int, ProcessInfo]], column: Column, reverse: bool) -> list[str]:
    """Row keys in display order; values that are missing go last either way."""
    value = column.value
    assert value is not None
    descending = column.largest_first != reverse
    present: list[tuple[float | str, str]] = []
    missing: list[str] = []
    for key, (gpu, p) in sorted(procs.items(), key=lambda kv: (kv[1][0], kv[1][1].pid)):
        v = value(gpu, p)
        if v is None:
            missing.append(key)
        else:
            present.append((v.casefold() if isinstance(v, str) else v, key))
    # A stable sort (reversed too) of rows already in GPU, PID order: ties stay in that order.
    present.sort(key=lambda t: t[0], reverse=descending)
    return [key for _, key in present] + missing


class ProcessesPanel(HostPanel):
    BINDINGS = [
        Binding("o", "cycle_sort", "Sort column"),
        Binding("O", "reverse_sort", "Reverse sort", key_display="O"),
        Binding("u", "filter_user", "Filter by user"),
        Binding("g", "cycle_grouping", "Group by"),
        Binding("space", "toggle_mark", "Mark", key_display="space"),
        Binding("U", "mark_alike('user')", "Mark the user's", key_display="U"),
        Binding("J", "mark_alike('job')", "Mark the job's", key_display="J"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort = DEFAULT_SORT
        self.reverse = False
        self.user_filter = ""
        self.last_view: HostView | None = None
        self.marked: set[str] = set()  # "gpu:pid" rows marked: K takes them all, in one guarded step
        self.grouping = "none"
        self.groups: dict[str, Group] = {}  # by header row key, as last drawn

    def compose(self) -> ComposeResult:
        yield Static(id="proc-summary")
        yield Input(placeholder="user (Enter keeps, Esc clears)", id="proc-filter")
        yield DataTable(id="procs", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#procs", DataTable)
        for c in COLUMNS:
            table.add_column(c.label, key=c.key)
        self.query_one("#proc-filter", Input).display = False

    def focus_main(self) -> None:
        self.query_one("#procs", DataTable).focus()

    # -- keys and clicks -------------------------------------------------------
    def action_cycle_sort(self) -> None:
        self.sort_by(SORTABLE[(SORTABLE.index(self.sort) + 1) % len(SORTABLE)])

    def action_cycle_grouping(self) -> None:
        names = [by for by, _, _ in GROUPINGS]
        self.grouping = names[(names.index(self.grouping) + 1) % len(names)]
        self.redraw()

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self.redraw()

    def sort_by(self, key: str, toggle: bool = False) -> None:
        """Sort by column ``key`` in its natural direction (or reverse it, if already sorted by it)."""
        if toggle and key == self.sort:
            self.reverse = not self.reverse
        else:
            self.sort, self.reverse = key, False
        self.redraw()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTABLE:
            self.sort_by(key, toggle=True)

    def action_toggle_mark(self) -> None:
        """Mark the process under the cursor; on a group's header, every process of the group
        (or unmark them, when they all are)."""
        key = self.cursor_key(self.query_one("#procs", DataTable))
        if key is None:
            return
        group = self.groups.get(key)
        if group is None:
            self.marked ^= {key}
        else:
            keys = set(group.members)
            self.marked = self.marked - keys if keys <= self.marked else self.marked | keys
        self.redraw()

    def action_mark_alike(self, by: str) -> None:
        """Mark every process of the user (or the Slurm job or container) under
        the cursor; when they all are, unmark them."""
        picked = self.selected_process()
        if picked is None or self.last_view is None:
            return
        same = alike(by, picked[1])
        if same is None:
            self.app.notify(f"this process has no {by} to go by", severity="warning")
            return
        keys = {f"{g.index}:{p.pid}" for g in self.last_view.gpus() for p in g.processes if alike(by, p) == same}
        self.marked = self.marked - keys if keys <= self.marked else self.marked | keys
        self.redraw()

    def clear_marks(self) -> None:
        self.marked.clear()
        self.redraw()

    def selected_processes(self) -> list[tuple[int, ProcessInfo]]:
        """The marked processes still listed, or the one under the cursor when none is."""
        if self.last_view is not None and self.marked:
            found = [(g.index, p) for g in self.last_view.gpus() for p in g.processes if f"{g.index}:{p.pid}" in self.marked]
            if found:
                return found
        picked = self.selected_process()
        return [] if picked is None else [picked]

    def action_filter_user(self) -> None:
        box = self.query_one("#proc-filter", Input)
        box.display = True
        box.value = self.user_filter
        box.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":  # otherwise escape leaves the screen, as everywhere
            return self.query_one("#proc-filter", Input).display or bool(self.user_filter)
        return True

    def action_clear_filter(self) -> None:
        self.close_filter("")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "proc-filter":
            self.user_filter = event.value.strip()
            self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "proc-filter":
            self.close_filter(event.value.strip())

    def close_filter(self, keep: str) -> None:
        box = self.query_one("#proc-filter", Input)
        box.display = False
        self.user_filter = keep
        self.focus_main()
        self.redraw()

    # -- drawing ---------------------------------------------------------------
    def redraw(self) -> None:
        if self.last_view is not None:
            self.show(self.last_view)

    def show(self, view: HostView) -> None:
        self.last_view = view
        table = self.query_one("#procs", DataTable)
        everything: dict[str, tuple[int, ProcessInfo]] = {}
        for g in view.gpus():
            for p in g.processes:
                everything[f"{g.index}:{p.pid}"] = (g.index, p)
        needle = self.user_filter.casefold()
        # Part of a name finds it, as the overview's / does: "bk" for bkumar.
        shown = {k: v for k, v in everything.items() if not needle or needle in (v[1].user or "").casefold()}
        at = self.cursor_key(table)
        wall = view.wall
        migs = mig_by_gpu(view)
        rows = {key: self.row(gpu, p, wall, view, migs.get(gpu)) for key, (gpu, p) in shown.items()}
        want = order(shown, BY_KEY[self.sort], self.reverse)
        if self.grouping != "none":
            groups = grouped(self.grouping, want, shown)
            self.groups = {g.key: g for g in groups}
            style = view.pal.dim if view.stale else view.pal.header
            for group in groups:
                cells = header_cells(group, shown, style)
                rows[group.key] = tuple(cells[c.key] for c in COLUMNS)
            want = [key for group in groups for key in (group.key, *group.members)]
        else:
            self.groups = {}
        sync_rows(table, rows)
        if [str(r.key.value) for r in table.ordered_rows] != want:
            # The sort's key sees a row's cells only: every row's cells, as text, are unique.
            rank = {tuple(str(c) for c in rows[key]): i for i, key in enumerate(want)}
            table.sort(key=lambda cells: rank[tuple(str(c) for c in cells)])
        if at in rows and table.get_row_index(at) != table.cursor_row:
            table.move_cursor(row=table.get_row_index(at), animate=False)
        self.query_one("#proc-summary", Static).update(self.summary(view, len(shown), len(everything)))

    def selected_process(self) -> tuple[int, ProcessInfo] | None:
        """(GPU, process) under the cursor, as last drawn; None when the table is empty."""
        key = self.cursor_key(self.query_one("#procs", DataTable))
        if key is None or self.last_view is None:
            return None
        for g in self.last_view.gpus():
            for p in g.processes:
                if f"{g.index}:{p.pid}" == key:
                    return g.index, p
        return None

    @staticmethod
    def cursor_key(table: DataTable[Cell]) -> str | None:
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def row(self, gpu: int, p: ProcessInfo, wall: float, view: HostView, mig: list[MigInstance] | None) -> tuple[Cell, ...]:
        style = view.pal.dim if view.stale else view.pal.text

        def num(value: str) -> Text:
            return Text(value, style=style, justify="right")

        running = age_words(wall - p.started_at) if p.started_at else NA
        pid = num(str(p.pid))
        if f"{gpu}:{p.pid}" in self.marked:  # the same digits (the sort reads them), reversed
            pid.stylize(view.pal.warn + Style(reverse=True, bold=True))
        return (
            pid,
            fmt(p.user),
            num(str(gpu)),
            mig_label(mig, p.pid),
            num(fmt(p.gpu_mem_mib, "{:,} MiB")),
            num(fmt(p.sm_pct, "{}%")),
            num(fmt(p.mem_bw_pct, "{}%")),
            num(fmt(p.cpu_pct, "{:.0f}%")),
            num(fmt(p.rss_mib, "{:,.0f} MiB")),
            num(running),
            slurm_job_words(p, view.slurm_job(gpu)),
            fmt(p.command),
        )

    def summary(self, view: HostView, shown: int, total: int) -> Text:
        pal = view.pal
        column = BY_KEY[self.sort]
        if column.text:
            direction = "Z to A" if self.reverse else "A to Z"
        else:
            direction = "largest first" if column.largest_first != self.reverse else "smallest first"
        text = Text.assemble((f"{total} process{'es' * (total != 1)}", pal.header))
        if self.grouping != "none":
            text.append(f"   grouped by {WORDS[self.grouping]}", pal.header)
        text.append(f"   sorted by {column.label} ({direction})")
        if self.user_filter:
            text.append(f"   user '{self.user_filter}': {shown} of {total} shown", pal.warn)
        if self.marked:
            text.append(f"   {len(self.marked)} marked: K kills them in one step", pal.warn)
        text.append_text(jobs_words(view, view.wall))
        text.append("   o/O: sort  g: group  u: user  space/U/J: mark one (a group) / the user's / the job's", pal.dim)
        return text
