"""Render the screens to screenshots/*.svg from a fixed demo seed.

Run after any UI change (``make screenshots``) and look at the results.
The fleet is simulated with a clock that does not move, so the same code
always draws the same numbers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gputui.agent.sampler import Sampler
from gputui.fleet.store import FleetStore
from gputui.frames import parse_frame
from gputui.sim.nvml import SimNvml
from gputui.transport.demo import host_names, scenario_for
from gputui.ui.app import GpuTuiApp

OUT = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (150, 36)


def frozen_fleet(hosts: int = 16, seed: int = 0) -> FleetStore:
    def fixed() -> float:
        return 100.0

    store = FleetStore(clock=fixed)
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for("fleet", i), seed=seed * 1009 + i, processes="synthetic", clock=fixed, host_no=i)
        sampler = Sampler(sim, host=name, source=f"sim:{sim.scenario.name}", describe=sim.describe_process, clock=fixed)
        store.add_host(name)
        store.apply(name, parse_frame(json.dumps(sampler.hello(1.0))))
        store.apply(name, parse_frame(json.dumps(sampler.sample())))
    store.mark_down(host_names(hosts)[-1], "connection refused (port 22)")
    return store


async def shoot() -> None:
    OUT.mkdir(exist_ok=True)
    app = GpuTuiApp(frozen_fleet(), title="demo: 16 hosts (fleet, seed 0)")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.save_screenshot(str(OUT / "overview.svg"))
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        app.save_screenshot(str(OUT / "host.svg"))
        await pilot.press("question_mark")
        await pilot.pause()
        app.save_screenshot(str(OUT / "help.svg"))
    for svg in sorted(OUT.glob("*.svg")):
        print(svg)


if __name__ == "__main__":
    asyncio.run(shoot())
