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


class Clock:
    """One clock for the simulators, the samplers and the store: it moves
    only when the script says, so the same seed draws the same screens."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frozen_fleet(hosts: int = 16, seed: int = 0, samples: int = 960) -> FleetStore:
    clock = Clock()
    store = FleetStore(clock=clock)
    samplers = []
    reduced: tuple[str, SimNvml] = ("", SimNvml("healthy", processes="synthetic", clock=clock))
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for("fleet", i), seed=seed * 1009 + i, processes="synthetic", clock=clock, host_no=i)
        sampler = Sampler(sim, host=name, source=f"sim:{sim.scenario.name}", describe=sim.describe_process, clock=clock)
        store.add_host(name)
        store.mark_connecting(name)
        if i == REDUCED_HOST:
            reduced = (name, sim)
            continue
        store.apply(name, parse_frame(json.dumps(sampler.hello(1.0))))
        samplers.append((name, sampler))
    for n in range(samples):  # 16 minutes of history: charts, and idle GPUs held long enough to count
        clock.now += 1.0
        for name, sampler in samplers:
            store.apply(name, parse_frame(json.dumps(sampler.sample())))
        if n % 60 == 0 or n == samples - 1:
            feed_as_nvidia_smi(store, *reduced)
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
    store = frozen_fleet()
    app = GpuTuiApp(store, [], title="demo: 16 hosts (fleet, seed 0)")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.save_screenshot(str(OUT / "overview.svg"))
        await pilot.press("m", "m")
        await pilot.pause()
        app.save_screenshot(str(OUT / "overview-temperature.svg"))
        await pilot.press("m", "m", "down", "down", "enter")
        for tab, name in (("1", "utilization"), ("2", "thermal"), ("3", "allocation"), ("4", "processes")):
            await pilot.press(tab)
            await pilot.pause()
            app.save_screenshot(str(OUT / f"host-{name}.svg"))
        await pilot.press("question_mark")
        await pilot.pause()
        app.save_screenshot(str(OUT / "help.svg"))
        await pilot.press("escape", "escape", "c")
        await pilot.pause()
        app.save_screenshot(str(OUT / "connections.svg"))
    console = GpuTuiApp(store, [], title="demo: 16 hosts (fleet, seed 0)", theme="gputui-console")
    async with console.run_test(size=SIZE) as pilot:
        await pilot.pause()
        console.save_screenshot(str(OUT / "console-overview.svg"))
        await pilot.press("down", "down", "enter", "2")
        await pilot.pause()
        console.save_screenshot(str(OUT / "console-host-thermal.svg"))
    for svg in sorted(OUT.glob("*.svg")):
        print(svg)


if __name__ == "__main__":
    asyncio.run(shoot())
