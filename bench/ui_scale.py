"""The dashboard at scale: CPU, memory and refresh time with N demo hosts.

Run by hand (``python bench/ui_scale.py``); not a test. For 64, 256 and
1,024 simulated 8-GPU hosts at a 1 s interval it runs the real app headless
(Textual's ``run_test``) on the demo fleet for ``--seconds`` and prints, for
the app process alone (the simulated hosts run in child processes, as real
hosts would be elsewhere):

- CPU % of one core over the run, after the first frames arrived;
- peak RSS;
- the 50th and 99th percentile time of one overview refresh: re-reading the
  store (filter, sort, counts) and drawing every visible line;
- the same for one health tick (the rules engine over the whole store, once a
  second; the overview stays in front, the triage screen is not opened), and
  the longest slice of it the event loop waited on (the engine gives the loop
  a turn every 64 hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Generator

from gputui.fleet.store import FleetStore, HostState
from gputui.health.model import Alert
from gputui.ui.app import GpuTuiApp
from gputui.ui.launch import demo_app
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.widgets.fleet_view import FleetView


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


async def measure(hosts: int, seconds: float) -> dict[str, object]:
    return await measure_app(demo_app(hosts, 8, "fleet", 0, 1.0), hosts, seconds)


async def measure_app(app: GpuTuiApp, hosts: int, seconds: float, gpus_per_host: int = 8) -> dict[str, object]:
    """The app's CPU, peak RSS, refresh and health times over ``seconds``, once all ``hosts`` are live."""
    app.triage_first = False  # measure the overview, with the engine still ticking
    refresh_ms: list[float] = []
    health_ms: list[float] = []  # CPU of one whole evaluation
    slice_ms: list[float] = []  # the longest the loop waited on one slice of it
    steps = app.board.steps
    assert steps is not None

    def timed_steps(store: FleetStore) -> Generator[None, None, list[Alert]]:
        inner, total = steps(store), 0.0
        while True:
            started = time.perf_counter()
            try:
                next(inner)
            except StopIteration as done:
                took = time.perf_counter() - started
                slice_ms.append(1000 * took)
                health_ms.append(1000 * (total + took))
                return done.value  # type: ignore[no-any-return]
            took = time.perf_counter() - started
            total += took
            slice_ms.append(1000 * took)
            yield

    app.board.steps = timed_steps
    async with app.run_test(size=(200, 60)) as pilot:
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        original = screen.update_view

        def timed_update() -> None:
            started = time.perf_counter()
            original()
            view = screen.query_one(FleetView)
            for y in range(view.size.height):
                view.render_line(y)
            refresh_ms.append(1000 * (time.perf_counter() - started))

        screen.update_view = timed_update  # type: ignore[method-assign]
        store = app.store
        started = time.monotonic()
        deadline = started + 120
        while store.counts()[HostState.LIVE] < hosts and time.monotonic() < deadline:
            await pilot.pause(0.2)
        first_all = time.monotonic()
        refresh_ms.clear()
        health_ms.clear()
        slice_ms.clear()
        cpu0, wall0 = time.process_time(), time.monotonic()
        await pilot.pause(seconds)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        live = store.counts()[HostState.LIVE]
        await pilot.press("q")
    return {
        "hosts": hosts,
        "gpus": hosts * gpus_per_host,
        "live_at_end": live,
        "seconds": round(wall, 1),
        "all_live_after_s": round(first_all - started, 1),
        "app_cpu_pct_of_one_core": round(100 * cpu / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "refreshes": len(refresh_ms),
        "refresh_p50_ms": round(statistics.median(refresh_ms), 1) if refresh_ms else None,
        "refresh_p99_ms": round(percentile(refresh_ms, 0.99), 1) if refresh_ms else None,
        "health_ticks": len(health_ms),
        "health_p50_ms": round(statistics.median(health_ms), 1) if health_ms else None,
        "health_p99_ms": round(percentile(health_ms, 0.99), 1) if health_ms else None,
        "health_slice_p99_ms": round(percentile(slice_ms, 0.99), 1) if slice_ms else None,
        "health_slice_max_ms": round(max(slice_ms), 1) if slice_ms else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, nargs="*", default=[64, 256, 1024])
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    if len(args.hosts) == 1:
        print(json.dumps(asyncio.run(measure(args.hosts[0], args.seconds))), flush=True)
        return
    for hosts in args.hosts:  # one process each, so that peak RSS is that size's own
        subprocess.run([sys.executable, __file__, "--hosts", str(hosts), "--seconds", str(args.seconds)], check=True)


if __name__ == "__main__":
    main()
