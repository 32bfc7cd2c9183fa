"""Apps for the UI tests and the steps that drive them.

- make_app: the dashboard on two local simulated hosts with the given
  ``[actions]``, its audit log and ledger state in the test's tmp_path (a
  second audit log: a second operator's dashboard on the same hosts), and
  the steps of a guarded action from it (open the allocation tab, start an
  action with a reason, read the dialog's status and preview);
- frozen_store: a fleet store of simulated hosts sampled once on a fixed clock;
- Host: one simulated host feeding a store on a clock the test moves, and
  open_screen to show its host screen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent

from gputui import config as cfg
from gputui.agent.sampler import Sampler
from gputui.fleet.store import FleetStore
from gputui.frames import parse_frame
from gputui.sim.nvml import SimNvml
from gputui.sources.demo import host_names, scenario_for
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.action_screen import ActionScreen
from gputui.ui.launch import configured_app
from gputui.ui.panels.allocation import AllocationPanel
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.seam import AppParts
from tests.screen_reading import static_text
from tests.waiting import wait_for

SIZE = (150, 40)
AGENT_WAIT_S = 30.0  # a preview or an apply starts a fresh agent process per host


def make_app(
    tmp_path: Path, actions: str, read_only: bool = False, theme: str = "gputui-dark", audit: str = "audit.jsonl"
) -> GpuTuiApp:
    """``audit``: the audit log's name; another one gives a second operator's dashboard
    (own config and audit log) on the same hosts and ledger state."""
    hosts = "".join(f'[[hosts]]\nname = "{n}"\ntransport = "local"\nsim = "healthy"\ngpus = 2\n' for n in ("a", "b"))
    path = tmp_path / ("config.toml" if audit == "audit.jsonl" else f"config-{Path(audit).stem}.toml")
    path.write_text(
        f'interval = 0.2\ntheme = "{theme}"\n'
        f'[actions]\naudit_log = "{tmp_path}/{audit}"\nstate_dir = "{tmp_path}/state"\n{actions}\n{hosts}'
    )
    return configured_app(path, cfg.load(path), read_only=read_only)


async def open_allocation(pilot: Pilot[None], app: GpuTuiApp, host: str = "a") -> HostScreen:
    await wait_for(pilot, lambda: app.store.hosts[host].sample is not None, f"{host}'s first sample", AGENT_WAIT_S)
    # Through the app's own message loop, not called from here: with two apps in one event loop
    # (test_ui_two_operators), a screen pushed from the test's task would run its message pump
    # in the context of the app whose pilot was made last, and be torn down by the wrong one.
    app.call_later(app.open_host, host)
    await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the host screen")
    screen = app.screen
    assert isinstance(screen, HostScreen)
    # The tabs mount their panes a moment after the screen: query, do not query_one.
    await wait_for(pilot, lambda: any(t.row_count for t in screen.query("#gpus").results(DataTable)), "the GPU table to fill")
    await pilot.press("3")
    await wait_for(pilot, lambda: screen.query_one(TabbedContent).active == "allocation", "the allocation tab")
    panel = screen.query_one(AllocationPanel)
    gpus = len(app.store.hosts[host].gpus())  # a row each, and one more for each MIG instance (the mixed scenario)
    await wait_for(pilot, lambda: panel.query_one("#alloc", DataTable).row_count >= gpus > 0, "the allocation table to fill")
    return screen


async def start(pilot: Pilot[None], key: str, reason: str) -> ActionScreen:
    """Press an action key, type a reason; the dialog is left with the form filled."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ActionScreen), "the action dialog")
    dialog = pilot.app.screen
    assert isinstance(dialog, ActionScreen)
    await pilot.press(*("space" if c == " " else c for c in reason))
    return dialog


def status(dialog: ActionScreen) -> str:
    return static_text(dialog.query_one("#action-status", Static))


def preview(dialog: ActionScreen) -> str:
    return static_text(dialog.query_one("#action-preview", Static))


def fixed() -> float:
    return 10.0


def frozen_store(hosts: int, tags: Callable[[int], tuple[str, ...]] = lambda i: ()) -> FleetStore:
    store = FleetStore(clock=fixed)
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for("fleet", i), seed=i, processes="synthetic", clock=fixed, host_no=i)
        sampler = Sampler(sim, host=name, describe=sim.describe_process, clock=fixed)
        store.add_host(name, tags(i), group="train" if i % 2 else "infer")
        store.apply(name, parse_frame(json.dumps(sampler.hello(1.0))))
        store.apply(name, parse_frame(json.dumps(sampler.sample())))
    return store


HOST = "node-1"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Host:
    """One simulated host (the incident scenario unless told) feeding a store, one second per sample."""

    def __init__(self, samples: int, scenario: str = "incident") -> None:
        self.clock = Clock()
        self.store = FleetStore(clock=self.clock)
        self.sim = SimNvml(scenario, seed=0, processes="synthetic", clock=self.clock)
        self.sampler = Sampler(
            self.sim, host=HOST, source=f"sim:{scenario}", describe=self.sim.describe_process, clock=self.clock
        )
        self.store.add_host(HOST)
        self.store.apply(HOST, parse_frame(json.dumps(self.sampler.hello(1.0))))
        self.feed(samples)

    def feed(self, samples: int) -> None:
        """Move simulated time on by ``samples`` seconds, one sample each (simulator and sampler both move)."""
        for _ in range(samples):
            self.clock.now += 1.0
            self.store.apply(HOST, parse_frame(json.dumps(self.sampler.sample())))


async def open_screen(pilot: Pilot[None], host: Host, idle_holding_s: float = 900.0) -> HostScreen:
    pilot.app.push_screen(HostScreen(host.store, HOST, AppParts(idle_holding_s=idle_holding_s)))
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HostScreen), "the host screen")
    screen = pilot.app.screen
    assert isinstance(screen, HostScreen)
    # The tabs mount their panes a moment after the screen: query, do not query_one.
    await wait_for(pilot, lambda: any(t.row_count for t in screen.query("#gpus").results(DataTable)), "the GPU table to fill")
    return screen
