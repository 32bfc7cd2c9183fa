"""The connections view: how each host is reached, and why one is not.

State and age, how the host is read (agent, reduced nvidia-smi, simulated),
agent version, time to first frame, attempts, the next retry and the last
error; ``r`` retries the selected host now, ``a`` adds a host to the config.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from gputui.config import Host
from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.render import age_words, fmt
from gputui.ui.widgets.footer import KeysFooter
from gputui.ui.widgets.palette import Palette
from gputui.ui.widgets.table_sync import Cell, sync_rows

COLUMNS = ("Host", "State", "Age", "Reads", "Agent", "First frame", "Tries", "Retry in", "Last error")


def reads(r: HostRecord) -> str:
    if r.hello is None:
        return "-"
    if r.hello.source == "nvidia-smi":
        # An older nvidia-smi lacks fields the rules use: say which, as alerts may then lean on defaults.
        lacking = f" (lacks {', '.join(r.hello.missing_fields)})" if r.hello.missing_fields else ""
        return f"reduced: nvidia-smi{lacking}"
    if r.hello.source == "prometheus":  # dcgm-exporter's metrics: what its counters leave out is not exported
        lacking = f" (not exported: {', '.join(r.hello.missing_fields)})" if r.hello.missing_fields else ""
        return f"prometheus{lacking}"
    return "simulated" if r.hello.source.startswith("sim:") else "agent (NVML)"


class ConnectionsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("r", "retry", "Retry now"),
        Binding("a", "add_host", "Add host"),
    ]

    def __init__(
        self, store: FleetStore, retry: Callable[[str], None], add_host: Callable[[Host], str | None] | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.retry = retry
        self.add_host = add_host  # the app's: appends to the config, connects; None: no config file to add to

    def compose(self) -> ComposeResult:
        yield Static("Connections", id="host-title")
        yield DataTable(id="connections", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        table.focus()
        self.update_view()
        self.set_interval(1.0, self.update_view)

    def update_view(self) -> None:
        now = self.store.clock()
        pal = Palette.of(self.app)
        style = {HostState.LIVE: pal.ok, HostState.STALE: pal.warn, HostState.DOWN: pal.bad, HostState.CONNECTING: pal.dim}
        rows: dict[str, tuple[Cell, ...]] = {}
        for r in self.store.hosts.values():
            state = r.state(now)
            retry = "-" if r.retry_at is None or state is HostState.LIVE else age_words(max(0.0, r.retry_at - now))
            rows[r.name] = (
                r.name, Text(state.value, style=style[state]), age_words(r.age_s(now)), reads(r),
                r.hello.agent_version if r.hello else "-", fmt(r.hello_after_s, "{:.1f}s"), str(r.connects),
                retry, Text(r.error or "", style=pal.bad if state is HostState.DOWN else pal.warn),
            )  # fmt: skip
        sync_rows(self.query_one(DataTable), rows)

    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def action_retry(self) -> None:
        name = self.selected()
        if name is not None:
            self.retry(name)
            self.notify(f"retrying {name} now")

    def action_add_host(self) -> None:
        if self.add_host is None:
            self.notify("no config file in use: start gputui with a config to add hosts", severity="warning")
            return
        from gputui.ui.dialogs.add_host import AddHostScreen

        self.app.push_screen(AddHostScreen(self.add_host))
