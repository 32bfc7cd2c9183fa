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
from gputui.sim.nvidia_smi import app_rows, gpu_row
from gputui.sim.nvml import SimNvml
from gputui.transport.demo import host_names, scenario_for
from gputui.transport.smi_fallback import APP_FIELDS, GPU_FIELDS, hello_frame, parse_apps, parse_gpu_line, sample_frame
from gputui.ui.app import GpuTuiApp

OUT = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (150, 36)
REDUCED_HOST = 11  # gpu-12 has no python3: read through nvidia-smi


def frozen_fleet(hosts: int = 16, seed: int = 0) -> FleetStore:
    def fixed() -> float:
        return 100.0

    store = FleetStore(clock=fixed)
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for("fleet", i), seed=seed * 1009 + i, processes="synthetic", clock=fixed, host_no=i)
        sampler = Sampler(sim, host=name, source=f"sim:{sim.scenario.name}", describe=sim.describe_process, clock=fixed)
        store.add_host(name)
        store.mark_connecting(name)
        if i == REDUCED_HOST:
            feed_as_nvidia_smi(store, name, sim)
            continue
        store.apply(name, parse_frame(json.dumps(sampler.hello(1.0))))
        store.apply(name, parse_frame(json.dumps(sampler.sample())))
    store.mark_down(host_names(hosts)[-1], "gpu-16: cannot connect to gpu-16: Connection refused")
    return store


def feed_as_nvidia_smi(store: FleetStore, name: str, sim: SimNvml) -> None:
    """A host without python3: what the nvidia-smi fallback makes of it."""
    rows = [parse_gpu_line(gpu_row(sim, i, list(GPU_FIELDS))) for i in range(len(sim.gpus))]
    apps = parse_apps("\n".join(app_rows(sim, list(APP_FIELDS))))
    store.apply(name, parse_frame(json.dumps(hello_frame(rows, name, 1.0))))
    store.apply(name, parse_frame(json.dumps(sample_frame(rows, 0, apps))))


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
        await pilot.press("escape", "escape", "c")
        await pilot.pause()
        app.save_screenshot(str(OUT / "connections.svg"))
    for svg in sorted(OUT.glob("*.svg")):
        print(svg)


if __name__ == "__main__":
    asyncio.run(shoot())
