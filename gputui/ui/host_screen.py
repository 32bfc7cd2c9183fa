"""One host: its GPUs and the processes on them."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.frames import GpuSample, GpuStatic
from gputui.render import NA, age_words, fmt, throttle_words
from gputui.ui.gpu_cells import heat_style
from gputui.ui.palette import Palette
from gputui.ui.table_sync import Cell, sync_rows

REFRESH_S = 1.0

GPU_COLUMNS = (
    "GPU",
    "Name",
    "Util",
    "Memory used / total",
    "Temp / slowdown",
    "Power / cap",
    "SM clock",
    "Fan",
    "P",
    "Throttle",
    "ECC unc.",
)
PROC_COLUMNS = ("GPU", "PID", "User", "GPU mem", "CPU", "RSS", "Running", "Job", "Command")


class HostScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("tab", "focus_next", "Next table", show=False),
    ]

    def __init__(self, store: FleetStore, host: str) -> None:
        super().__init__()
        self.store = store
        self.host = host

    def compose(self) -> ComposeResult:
        yield Static(id="host-title")
        yield DataTable(id="gpus", cursor_type="row", zebra_stripes=True)
        yield Static("Processes", id="proc-title")
        yield DataTable(id="procs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#gpus", DataTable).add_columns(*GPU_COLUMNS)
        self.query_one("#procs", DataTable).add_columns(*PROC_COLUMNS)
        self.query_one("#gpus", DataTable).focus()
        self.update_view()
        self.set_interval(REFRESH_S, self.update_view)

    @property
    def record(self) -> HostRecord:
        return self.store.hosts[self.host]

    def update_view(self) -> None:
        r = self.record
        now = self.store.clock()
        state = r.state(now)
        pal = Palette.of(self.app)
        self.query_one("#host-title", Static).update(self.title_line(r, state, now, pal))
        stale = state is not HostState.LIVE
        gpu_rows = {str(g.index): self.gpu_row(g, r.static(g.index), pal, stale) for g in r.gpus()}
        sync_rows(self.query_one("#gpus", DataTable), gpu_rows)
        proc_rows = {}
        wall = time.time()
        for g in r.gpus():
            for p in g.processes:
                running = age_words(wall - p.started_at) if p.started_at else NA
                job = (p.slurm_job and f"slurm {p.slurm_job}") or (p.container and f"ctr {p.container}") or ""
                proc_rows[f"{g.index}:{p.pid}"] = (
                    str(g.index), str(p.pid), fmt(p.user), fmt(p.gpu_mem_mib, "{} MiB"), fmt(p.cpu_pct, "{:.0f}%"),
                    fmt(p.rss_mib, "{:.0f} MiB"), running, job, fmt(p.command),
                )  # fmt: skip
        sync_rows(self.query_one("#procs", DataTable), proc_rows)

    def title_line(self, r: HostRecord, state: HostState, now: float, pal: Palette) -> Text:
        colour = {HostState.LIVE: pal.ok, HostState.STALE: pal.warn, HostState.DOWN: pal.bad}.get(state, pal.dim)
        text = Text.assemble((r.name, pal.header), "   ", (state.value, colour), f"   data {age_words(r.age_s(now))} old")
        if r.hello:
            text.append(f"   driver {fmt(r.hello.driver_version)}   CUDA {fmt(r.hello.cuda_driver_version)}   {r.hello.source}")
        if r.error:
            text.append(f"   {r.error}", pal.bad)
        return text

    def gpu_row(self, g: GpuSample, s: GpuStatic | None, pal: Palette, stale: bool) -> tuple[Cell, ...]:
        name = (s.name or NA).replace("NVIDIA ", "") if s else NA
        if s and s.mig_enabled:
            name += " [MIG]"
        if g.lost:
            lost = Text("LOST", style=pal.bad)
            why = Text("fallen off the bus: no data", style=pal.bad)
            return (str(g.index), name, lost, "", "", "", "", "", "", why, "")
        temp = Text(
            f"{fmt(g.temp_c)} / {fmt(s.temp_slowdown_c if s else None)} C",
            style=pal.dim if stale else heat_style(g, s, pal),
        )
        unc = g.ecc.volatile_uncorrected if g.ecc else None
        ecc = Text(fmt(unc), style=pal.bad if unc else pal.text)
        return (
            str(g.index), name, fmt(g.util_pct, "{}%"),
            f"{fmt(g.mem_used_mib)} / {fmt(g.mem_total_mib)} MiB", temp,
            f"{fmt(g.power_w, '{:.0f}')} / {fmt(g.power_limit_w, '{:.0f}')} W",
            fmt(g.sm_clock_mhz, "{} MHz"), fmt(g.fan_pct, "{}%"), fmt(g.pstate),
            throttle_words(g.throttle), ecc,
        )  # fmt: skip
