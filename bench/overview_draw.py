"""The CPU of drawing the overview's lines, with nothing else running.

Run by hand (``python bench/overview_draw.py``); not a test. ``bench/ui_scale.py``
times a whole refresh inside the running dashboard (the lines, Textual's
compositor and whatever else shared the turn), next to the demo's feeds on the
same cores. This one opens the dashboard headless on a store fed with the demo
fleet's real frames (``bench/demo_lines.py``), then draws every line on
screen anew, again and again (``FleetView.render_line`` after its lines kept
since the last refresh are dropped, as a refresh drops them), in the thread's
CPU time with the garbage collector held off: the line's own cost,
comparable from one commit to the next on the same machine.

It prints one JSON line: the lines on screen and the median and fastest time
per line (µs of CPU) over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repo's root

from bench.demo_lines import DemoLines, apply_second, connected
from gputui.fleet.store import FleetStore
from gputui.ui.app import GpuTuiApp
from gputui.ui.widgets.fleet_view import FleetView


def fed_store(hosts: int, seconds: int) -> FleetStore:
    """A store of ``hosts`` demo hosts that have sent ``seconds`` samples, on a clock stopped at the last."""
    fleet = DemoLines(hosts)
    now = [1000.0]
    store = FleetStore(clock=lambda: now[0])
    decoders = connected(fleet.names, fleet.hellos(), store)
    for _ in range(seconds):
        now[0] += 1.0
        apply_second(store, fleet.names, decoders, fleet.second())
    return store


async def measure(hosts: int, rounds: int, size: tuple[int, int]) -> dict[str, object]:
    app = GpuTuiApp(fed_store(hosts, 12), [])
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        view = app.screen.query_one(FleetView)
        lines = view.size.height
        per_line_us: list[float] = []
        for _ in range(rounds):
            gc.disable()
            started = time.thread_time()
            view.drawn.clear()
            for y in range(lines):
                view.render_line(y)
            per_line_us.append(1e6 * (time.thread_time() - started) / lines)
            gc.enable()
    return {
        "hosts": hosts,
        "size": f"{size[0]}x{size[1]}",
        "lines": lines,
        "rounds": rounds,
        "line_cpu_p50_us": round(statistics.median(per_line_us), 1),
        "line_cpu_min_us": round(min(per_line_us), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=120)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--height", type=int, default=60)
    args = p.parse_args()
    print(json.dumps(asyncio.run(measure(args.hosts, args.rounds, (args.width, args.height)))), flush=True)


if __name__ == "__main__":
    main()
