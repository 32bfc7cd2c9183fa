"""One host in four tabs: utilization, thermal, allocation, processes.

The title line (host, state, data age, GPU models, driver) and the footer stay put; the
tabs below switch with ``1``-``4`` or a click. Once a second the screen
redraws the title and the visible tab only, from the store, updating tables
in place so cursors and scroll positions survive the refresh.

Actions start here (``R`` ``X`` ``D`` ``U`` on the selected GPUs of a GPU
tab, ``N`` ``M`` on the node, ``K`` on the process under the processes
tab's cursor) and go through the guard in :mod:`gputui.ui.dialogs.action_screen`.
The keys work even when actions are off or the dashboard is read-only: the
operator then sees the guard's refusal, and the refusal is on record.
"""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from gputui.actions.guard import Outcome
from gputui.actions.model import Target
from gputui.actions.render import outcome_words
from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.render import age_words, fmt
from gputui.ui.panels.allocation import AllocationPanel
from gputui.ui.panels.base import HostPanel, HostView
from gputui.ui.panels.processes import ProcessesPanel
from gputui.ui.panels.thermal import ThermalPanel
from gputui.ui.panels.utilization import UtilizationPanel
from gputui.ui.screens.seam import AppParts, OpenAction
from gputui.ui.widgets.footer import KeysFooter
from gputui.ui.widgets.palette import Palette, ascii_mode
from gputui.ui.widgets.slurm_text import slurm_words

REFRESH_S = 1.0
TABS = (("utilization", "Utilization"), ("thermal", "Thermal"), ("allocation", "Allocation"), ("processes", "Processes"))
GPU_ACTIONS = (("R", "reserve", "Reserve"), ("X", "release", "Release"), ("D", "drain", "Drain"), ("U", "undrain", "Undrain"))
NODE_ACTIONS = (
    ("N", "drain-node", "Drain node"),
    ("M", "resume-node", "Resume node"),
    ("V", "reserve-node", "Reserve node"),  # a Slurm reservation: hosts whose backend is slurmctld
    ("L", "release-node", "Release node"),
)
NODE_KINDS = {kind for _, kind, _ in NODE_ACTIONS}
SLURM_RESERVATIONS = ("reserve-node", "release-node")


def lost_hint(kind: str, record: HostRecord | None, gpus: list[int]) -> str:
    """What the action dialog says up front when a chosen GPU is lost: the host cannot reach it
    through NVML and will refuse, so point to the node (the lost-GPU alert's own advice)."""
    lost = sorted({g.index for g in record.gpus() if g.lost} & set(gpus)) if record is not None else []
    if not lost or kind in ("drain-node", "resume-node", "kill"):
        return ""
    which = f"GPU {lost[0]} is" if len(lost) == 1 else f"GPUs {', '.join(str(i) for i in lost)} are"
    return f"{which} lost (NVML cannot reach it): the host will refuse to {kind} it. N drains the node"


class HostScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        # The tab bar shows these keys ("1 Utilization"): the footer keeps its room for the actions.
        *(Binding(str(n), f"show_tab('{tab}')", title, key_display=str(n), show=False) for n, (tab, title) in enumerate(TABS, 1)),
        *(Binding(key, f"act('{kind}')", title, key_display=key) for key, kind, title in GPU_ACTIONS + NODE_ACTIONS),
        Binding("K", "act('kill')", "Kill process", key_display="K"),
    ]

    def __init__(self, store: FleetStore, host: str, parts: AppParts | None = None, gpu: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.host = host
        self.parts = parts or AppParts()  # the action desk (the title's mode) and the idle-holding threshold
        self.gpu = gpu  # opened on this GPU (from an alert): each tab's cursor starts on its row
        self.placed: set[str] = set()  # the tabs whose cursor was put there

    def compose(self) -> ComposeResult:
        yield Static(id="host-title")
        panels: tuple[HostPanel, ...] = (
            UtilizationPanel(id="utilization-panel"),
            ThermalPanel(id="thermal-panel"),
            AllocationPanel(self.parts.idle_holding_s, id="allocation-panel"),
            ProcessesPanel(id="processes-panel"),
        )
        with TabbedContent(id="host-tabs"):
            for n, ((tab, title), panel) in enumerate(zip(TABS, panels, strict=True), 1):
                with TabPane(f"{n} {title}", id=tab):
                    yield panel
        yield KeysFooter()

    def on_mount(self) -> None:
        self.update_view()
        self.call_after_refresh(self.focus_and_draw)  # the tabs mount their panes after this screen's mount
        self.set_interval(REFRESH_S, self.update_view)

    @property
    def record(self) -> HostRecord:
        return self.store.hosts[self.host]

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#host-tabs", TabbedContent)

    def active_panel(self) -> HostPanel | None:
        """The panel of the tab shown (None until the tabs have mounted their panes)."""
        tab = self.tabs.active or TABS[0][0]
        return next(iter(self.query(f"#{tab}-panel").results(HostPanel)), None)

    def action_show_tab(self, tab: str) -> None:
        self.tabs.active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.focus_and_draw()
        self.refresh_bindings()  # GPU actions on the GPU tabs, kill on the processes tab

    # -- actions ---------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action != "act" or not parameters:
            return True
        if parameters[0] in SLURM_RESERVATIONS:  # only where Slurm's controller holds the node: shown nowhere else
            desk = self.parts.actions
            host = desk.config.host(self.host) if desk is not None else None
            return desk is not None and host is not None and desk.config.backend_of(host) == "slurmctld"
        if parameters[0] in NODE_KINDS:
            return True
        on_processes = (self.tabs.active or TABS[0][0]) == "processes"
        return on_processes == (parameters[0] == "kill")

    def action_act(self, kind: str) -> None:
        """Open the action dialog on what is selected: GPUs, the process, or the node."""
        detail = ""
        if kind == "kill":
            picked = self.query_one(ProcessesPanel).selected_processes()
            targets = [Target(self.host, pid=p.pid) for _, p in picked]
            if len(picked) == 1:
                gpu, p = picked[0]
                detail = f"pid {p.pid} on GPU {gpu}, user {p.user or '?'}: {(p.command or '?')[:60]}"
            elif picked:
                users = sorted({p.user or "?" for _, p in picked})
                detail = f"{len(picked)} processes of {', '.join(users)}"
        elif kind in NODE_KINDS:
            targets = [Target(self.host)]
        else:
            gpus = self.selected_gpus()
            targets = [Target(self.host, tuple(str(i) for i in gpus))] if gpus else []
            detail = lost_hint(kind, self.store.hosts.get(self.host), gpus)
        self.post_message(OpenAction(kind, targets, detail, self.action_done))

    def selected_gpus(self) -> list[int]:
        """The allocation tab's marked GPUs (or its cursor row); another GPU tab's cursor row."""
        panel = self.active_panel()
        if isinstance(panel, AllocationPanel):
            return panel.selected_gpus()
        for table in panel.query(DataTable) if panel is not None else ():
            if table.row_count:
                key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
                return [int(key)] if key is not None and key.isdigit() else []
        return []

    def action_done(self, outcome: Outcome | None) -> None:
        """The dialog closed: say how it ended (the audit id with it), and unmark applied GPUs."""
        if outcome is None:
            return
        severity: SeverityLevel = "information" if outcome.ok else ("warning" if outcome.status == "cancelled" else "error")
        self.notify(f"{outcome_words(outcome)} (audit {outcome.audit_id})", severity=severity, markup=False)
        if outcome.status == "applied":
            self.query_one(AllocationPanel).clear_marks()
            self.query_one(ProcessesPanel).clear_marks()
        self.update_view()

    def focus_and_draw(self) -> None:
        """A tab just shown: draw it now (hidden tabs are not kept up to date) and focus its table."""
        panel = self.active_panel()
        if panel is not None:
            panel.focus_main()
        self.update_view()

    def update_view(self) -> None:
        r = self.record
        now = self.store.clock()
        state = r.state(now)
        pal = Palette.of(self.app)
        self.query_one("#host-title", Static).update(self.title_line(r, state, now, pal))
        panel = self.active_panel()
        if panel is not None:
            stale = state is not HostState.LIVE
            wall, slurm = self.parts.wall_clock(), self.store.slurm
            panel.show(HostView(record=r, now=now, stale=stale, pal=pal, ascii=ascii_mode(self.app), wall=wall, slurm=slurm))
            if self.gpu is not None and panel.id not in self.placed:
                self.place_cursor(panel)

    def place_cursor(self, panel: HostPanel) -> None:
        """The first time a tab draws the GPU this screen was opened on, its cursor goes there
        (a GPU tab's row, or the processes tab's first process on that GPU)."""
        for table in panel.query(DataTable):
            for i, row in enumerate(table.ordered_rows):
                key = str(row.key.value)
                if key == str(self.gpu) or key.startswith(f"{self.gpu}:"):
                    table.move_cursor(row=i, animate=False)
                    self.placed.add(panel.id or "")
                    return
            if table.row_count:  # drawn, and the GPU is not there (lost, or no process on it)
                self.placed.add(panel.id or "")
            return

    def title_line(self, r: HostRecord, state: HostState, now: float, pal: Palette) -> Text:
        colour = {HostState.LIVE: pal.ok, HostState.STALE: pal.warn, HostState.DOWN: pal.bad}.get(state, pal.dim)
        text = Text.assemble((r.name, pal.header), "   ", (state.value, colour))
        desk = self.parts.actions
        mode = desk.mode_words() if desk is not None else None
        if mode:  # up front: the line is cut at the right edge
            text.append(f"   {mode}", pal.warn)
        text.append(f"   data {age_words(r.age_s(now))} old")
        behind = self.parts.behind_words() if state is HostState.STALE else ""
        if behind:  # the host may be well: its frames wait unread here
            text.append(f" ({behind})", pal.warn)
        text.append_text(slurm_words(self.store.slurm, r.name, pal))
        if r.hello:
            models = Counter((g.name or "unknown GPU").replace("NVIDIA ", "") for g in r.hello.gpus if not g.lost)
            text.append("   " + ", ".join(f"{n}x {name}" for name, n in models.items()))
            lost = sum(g.lost for g in r.hello.gpus)
            if lost:
                text.append(f", {lost} lost", pal.bad)
            text.append(f"   driver {fmt(r.hello.driver_version)}   CUDA {fmt(r.hello.cuda_driver_version)}   {r.hello.source}")
        if r.error:
            text.append(f"   {r.error}", pal.bad)
        return text
