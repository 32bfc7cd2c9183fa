"""One host in four tabs: utilization, thermal, allocation, processes.

The title line (host, state, data age, GPU models, driver) and the footer stay put; the
tabs below switch with ``1``-``4`` or a click. Once a second the screen
redraws the title and the visible tab only, from the store, updating tables
in place so cursors and scroll positions survive the refresh.
"""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.render import age_words, fmt
from gputui.ui.palette import Palette, ascii_mode
from gputui.ui.panels.allocation import DEFAULT_IDLE_HOLDING_S, AllocationPanel
from gputui.ui.panels.base import HostPanel, HostView
from gputui.ui.panels.processes import ProcessesPanel
from gputui.ui.panels.thermal import ThermalPanel
from gputui.ui.panels.utilization import UtilizationPanel

REFRESH_S = 1.0
TABS = (("utilization", "Utilization"), ("thermal", "Thermal"), ("allocation", "Allocation"), ("processes", "Processes"))


class HostScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        *(Binding(str(n), f"show_tab('{tab}')", title, key_display=str(n)) for n, (tab, title) in enumerate(TABS, 1)),
    ]

    def __init__(self, store: FleetStore, host: str, idle_holding_s: float = DEFAULT_IDLE_HOLDING_S) -> None:
        super().__init__()
        self.store = store
        self.host = host
        self.idle_holding_s = idle_holding_s

    def compose(self) -> ComposeResult:
        yield Static(id="host-title")
        panels: tuple[HostPanel, ...] = (
            UtilizationPanel(id="utilization-panel"),
            ThermalPanel(id="thermal-panel"),
            AllocationPanel(self.idle_holding_s, id="allocation-panel"),
            ProcessesPanel(id="processes-panel"),
        )
        with TabbedContent(id="host-tabs"):
            for n, ((tab, title), panel) in enumerate(zip(TABS, panels, strict=True), 1):
                with TabPane(f"{n} {title}", id=tab):
                    yield panel
        yield Footer()

    def on_mount(self) -> None:
        if ascii_mode(self.app):
            self.add_class("-ascii")  # the tabs' underline is drawn with box characters
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
            panel.show(HostView(record=r, now=now, stale=state is not HostState.LIVE, pal=pal, ascii=ascii_mode(self.app)))

    def title_line(self, r: HostRecord, state: HostState, now: float, pal: Palette) -> Text:
        colour = {HostState.LIVE: pal.ok, HostState.STALE: pal.warn, HostState.DOWN: pal.bad}.get(state, pal.dim)
        text = Text.assemble((r.name, pal.header), "   ", (state.value, colour), f"   data {age_words(r.age_s(now))} old")
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
