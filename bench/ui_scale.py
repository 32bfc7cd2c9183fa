"""The dashboard at scale: CPU, memory, refresh time and event-loop stalls with N demo hosts.

Run by hand (``python bench/ui_scale.py --hosts 64 1024 --seconds 20``); not a
test. For each size (64, 256 and 1,024 simulated 8-GPU hosts at a 1 s interval
unless ``--hosts`` says otherwise; each in a process of its own, so that peak
RSS is that size's own) it runs the real app headless (Textual's ``run_test``)
on the demo fleet for ``--seconds`` and prints one JSON line with, for the app
process alone (the simulated hosts run in child processes, as real hosts would
be elsewhere):

- CPU % of one core over the run, after the first frames arrived;
- how busy the whole machine was (every core, the demo's feeds included);
- peak RSS, and RSS at the end (each GPU's hour of history is allocated when its first sample
  comes, so what grows after that is not history);
- how many hosts were stale at the end, and in what share of the app's own
  pace readings (once a second, gputui/fleet/pace.py) it said on screen that
  it was behind its hosts (``behind_pct``: those stale hosts were waiting on it);
- how many frames were bad (a host reset: with changes, a frame dropped
  under load breaks the chain until the next keyframe);
- how many samples each host sent a second (``samples_per_host_s``): below
  1.0 the app did less than the size's work, because the demo's feeds could
  not sample every host each second (on a 2-core machine, from about 600
  hosts) or the app could not read them. ``--sampled-per-feed K`` has each
  feed sample only K of its 512 hosts and send the others copies of their
  frames (demo_feed.py ``--sampled``): the app's work per host is the same;
- the 50th and 99th percentile time of one overview refresh: re-reading the
  store (filter, sort, counts) and drawing every visible line;
- the same for one health tick (the rules engine over the whole store, once a
  second; the overview stays in front, the triage screen is not opened), and
  the longest slice of it the event loop waited on (the engine gives the loop
  a turn every 32 hosts, or sooner once a slice has taken 2 ms);
- the longest stall of the event loop, whatever held it (a refresh, a health
  slice, parsing frames, the garbage collector): a probe task sleeps 10 ms
  over and over, and how late it wakes is how long the loop was held
  (p99 and max); of each stall, the part the app's thread was on a CPU
  (``loop_held``: at most its own work, the rest was waiting for a core on a
  busy machine); and the garbage collector's pauses: per generation, how many,
  the longest, the most CPU time one took (a pause much longer than that was
  the process waiting for a core) and the median;
- how long quitting took: the app unmounting, its hosts' links closing and
  the demo's feed processes ending.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Generator, Sequence

from textual.strip import Strip

from gputui.fleet.pace import PaceReading
from gputui.fleet.store import FleetStore, HostState
from gputui.health.model import Alert
from gputui.sources.demo import DemoFleet
from gputui.ui.app import GpuTuiApp
from gputui.ui.launch import demo_app, tune_heap
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.widgets.fleet_view import FleetView

PROBE_S = 0.010  # the loop-lag probe's sleep: 100 wakeups a second cost next to nothing
ALL_LIVE_WITHIN_S = 300.0  # 4,096 hosts take a while to start on a 2-core machine


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of every core so far (/proc/stat): whether the app had the machine to
    itself or shared it with the demo's feeds (a stall may be the loop waiting for a core)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def rss_now_mb() -> int:
    """Resident memory now (peak RSS includes the start: every host's hello and first keyframe at once)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * resource.getpagesize() / 2**20)


def series() -> array[float]:
    """Where a run's timings go: raw doubles, not a float object each. A run at 4,096 hosts keeps
    some 200 a second (loop probes, collections, health slices); as floats in lists, 32 bytes
    each, that is about 20 MB an hour in the app's own process, which an hour's run read as
    the app's growth (Python's small blocks grew about 160 a second there while the objects
    the collector tracks stayed flat)."""
    return array("d")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def spread(name: str, values: Sequence[float]) -> dict[str, float | None]:
    """``name``'s p50 and p99 in ms (None for no values): a bench line's usual pair."""
    return {
        f"{name}_p50_ms": round(statistics.median(values), 1) if values else None,
        f"{name}_p99_ms": round(percentile(values, 0.99), 1) if values else None,
    }


class LoopLag:
    """How late the event loop wakes a task that sleeps ``PROBE_S``: the time something else held
    the loop. Cheap (a hundred wakeups a second) and honest: it sees every stall, not only the
    ones a bench knew to time."""

    def __init__(self) -> None:
        self.late_ms = series()
        self.held_ms = series()  # of each, what the app's own thread spent on the CPU

    async def run(self) -> None:
        """Each wakeup's lateness, and how much of it the loop's thread was running: on a machine
        whose cores are all busy (the demo's feeds want more than one from 2,048 hosts) a stall is
        also the process waiting for a core, which the app's own work does not explain."""
        loop = asyncio.get_running_loop()
        while True:
            started, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(PROBE_S)
            late = max(0.0, loop.time() - started - PROBE_S)
            self.late_ms.append(1000 * late)
            self.held_ms.append(1000 * min(late, time.thread_time() - cpu))


class GcPauses:
    """Each garbage collection's pause, by generation (``gc.callbacks``): of the loop's stalls,
    the ones the collector made; and of each, the part the app's thread was on a CPU. A pause
    far longer than its CPU part is the process waiting for a core (the demo's feeds keep the
    machine busy), not the collector's walk."""

    def __init__(self) -> None:
        self.ms = {0: series(), 1: series(), 2: series()}
        self.cpu_ms = {0: series(), 1: series(), 2: series()}
        self.started = self.started_cpu = 0.0
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started, self.started_cpu = time.perf_counter(), time.thread_time()
        else:
            generation = info["generation"]
            self.ms[generation].append(1000 * (time.perf_counter() - self.started))
            self.cpu_ms[generation].append(1000 * (time.thread_time() - self.started_cpu))

    def clear(self) -> None:
        for pauses in (*self.ms.values(), *self.cpu_ms.values()):
            del pauses[:]

    def stop(self) -> None:
        """No more pauses counted: quitting cancels every host's task, and the tracebacks of
        thousands of cancellations make young collections of 20,000 objects and more (14 ms at
        4,096 hosts), which are not the running dashboard's."""
        if self.callback in gc.callbacks:
            gc.callbacks.remove(self.callback)

    def figures(self) -> dict[str, object]:
        """Per generation: how many collections, the longest, the most CPU one took, and the median
        pause, as ``gc_pauses``: {gen: [count, max ms, max CPU ms, p50 ms]}. The median is the
        running dashboard's: the longest middle collection is often the one just after the fleet
        connected, when every GPU's history was being made and the heap not yet frozen."""
        figures: dict[int, list[object]] = {}
        for g, v in self.ms.items():
            most = (round(max(v), 1), round(max(self.cpu_ms[g]), 1)) if v else (0.0, 0.0)
            figures[g] = [len(v), *most, round(percentile(v, 0.5), 1) if v else 0.0]
        return {"gc_pauses": figures}


class HealthTimes:
    """Wraps the board's evaluation steps: each slice's time and each whole evaluation's."""

    def __init__(self, app: GpuTuiApp) -> None:
        steps = app.board.steps
        assert steps is not None
        self.inner_steps = steps
        self.whole_ms = series()  # CPU of one whole evaluation
        self.slice_ms = series()  # the longest the loop waited on one slice of it
        app.board.steps = self.steps

    def steps(self, store: FleetStore) -> Generator[None, None, list[Alert]]:
        inner, total = self.inner_steps(store), 0.0
        while True:
            started = time.perf_counter()
            try:
                next(inner)
            except StopIteration as done:
                took = time.perf_counter() - started
                self.slice_ms.append(1000 * took)
                self.whole_ms.append(1000 * (total + took))
                return done.value  # type: ignore[no-any-return]
            took = time.perf_counter() - started
            total += took
            self.slice_ms.append(1000 * took)
            yield

    def clear(self) -> None:
        del self.whole_ms[:]
        del self.slice_ms[:]


def time_refreshes(screen: OverviewScreen) -> array[float]:
    """Times the overview's refresh: re-reading the store, then drawing every visible line.

    Each part is timed where the app does it: the re-reading in the overview's tick, the lines
    when Textual's compositor asks for them, in a later turn of the event loop. A refresh's time
    is its tick plus the lines drawn before the next tick. (Drawing the lines inside the timed
    tick, as this did before, put both in one turn, which the app never does, and the loop-stall
    probe measured that longer turn.)"""
    refresh_ms = series()
    original = screen.update_view
    view = screen.query_one(FleetView)
    draw = view._draw
    tick_ms: list[float] = []  # the last tick's time, until its lines are drawn (at most one)
    drawn_ms = [0.0]

    def timed_draw(index: int, scroll_x: int, width: int, focused: bool) -> Strip:
        started = time.perf_counter()
        try:
            return draw(index, scroll_x, width, focused)
        finally:
            drawn_ms[0] += 1000 * (time.perf_counter() - started)

    def timed_update() -> None:
        if tick_ms:  # the refresh before, now that its lines have been drawn
            refresh_ms.append(tick_ms.pop() + drawn_ms[0])
        started = time.perf_counter()
        original()
        tick_ms.append(1000 * (time.perf_counter() - started))
        drawn_ms[0] = 0.0

    screen.update_view = timed_update  # type: ignore[method-assign]
    view._draw = timed_draw  # type: ignore[method-assign]
    return refresh_ms


class PaceCount:
    """The app's pace readings in the measured window: how many, and how many said it was behind."""

    def __init__(self) -> None:
        self.readings = self.behind = 0

    def clear(self) -> None:
        self.readings = self.behind = 0


def watch_pace(app: GpuTuiApp) -> PaceCount:
    """Counts the readings of the app's pace meter (whether it says, on screen, that it is behind its hosts)."""
    counted = PaceCount()
    original = app.pace.measure

    def measured() -> PaceReading:
        reading = original()
        counted.readings += 1
        counted.behind += reading.behind
        return reading

    app.pace.measure = measured  # type: ignore[method-assign]
    return counted


async def measure(hosts: int, seconds: float) -> dict[str, object]:
    return await measure_app(demo_app(hosts, 8, "fleet", 0, 1.0), hosts, seconds)


async def measure_app(app: GpuTuiApp, hosts: int, seconds: float, gpus_per_host: int = 8) -> dict[str, object]:
    """The app's CPU, peak RSS, refresh and health times and loop stalls over ``seconds``, once all
    ``hosts`` are live, and how long quitting took."""
    tune_heap(app)  # as ``gputui`` runs the dashboard (gputui/ui/launch.py: run_app)
    app.triage_first = False  # measure the overview, with the engine still ticking
    health, lag, collections = HealthTimes(app), LoopLag(), GcPauses()
    paces = watch_pace(app)  # before the app mounts, which starts the meter's timer
    async with app.run_test(size=(200, 60)) as pilot:
        screen = app.screen
        assert isinstance(screen, OverviewScreen)
        refresh_ms = time_refreshes(screen)
        store = app.store
        started = time.monotonic()
        while store.counts()[HostState.LIVE] < hosts and time.monotonic() < started + ALL_LIVE_WITHIN_S:
            await pilot.pause(0.2)
        first_all = time.monotonic()
        while app.heap is not None and time.monotonic() < started + ALL_LIVE_WITHIN_S:
            await pilot.pause(0.2)  # the heap frozen once, at the first health tick after they connected
        probe = asyncio.ensure_future(lag.run())
        del refresh_ms[:]
        health.clear()
        collections.clear()
        paces.clear()
        bad_before = sum(r.bad_frames for r in store.hosts.values())
        samples_before = store.samples
        cpu0, wall0, machine0, rss_start = time.process_time(), time.monotonic(), machine_busy(), rss_now_mb()
        await pilot.pause(seconds)
        cpu, wall, rss_end = time.process_time() - cpu0, time.monotonic() - wall0, rss_now_mb()
        machine = [now - then for now, then in zip(machine_busy(), machine0, strict=True)]
        probe.cancel()
        collections.stop()
        counts = store.counts()
        live = counts[HostState.LIVE]
        bad_frames = sum(r.bad_frames for r in store.hosts.values()) - bad_before
        samples = store.samples - samples_before
        quitting = time.monotonic()
        await pilot.press("q")
    return {
        "hosts": hosts,
        "gpus": hosts * gpus_per_host,
        "live_at_end": live,
        "stale_at_end": counts[HostState.STALE],
        "behind_pct": round(100 * paces.behind / paces.readings) if paces.readings else None,
        "bad_frames": bad_frames,
        "samples_per_host_s": round(samples / (wall * hosts), 2),
        "sampled_per_feed": DemoFleet.sampled_per_feed or None,
        "seconds": round(wall, 1),
        "all_live_after_s": round(first_all - started, 1),
        "app_cpu_pct_of_one_core": round(100 * cpu / wall, 1),
        "machine_busy_pct": round(100 * machine[0] / max(1, machine[1]), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "refreshes": len(refresh_ms),
        **spread("refresh", refresh_ms),
        "health_ticks": len(health.whole_ms),
        **spread("health", health.whole_ms),
        "health_slice_p99_ms": round(percentile(health.slice_ms, 0.99), 1) if health.slice_ms else None,
        "health_slice_max_ms": round(max(health.slice_ms), 1) if health.slice_ms else None,
        "loop_stall_p99_ms": round(percentile(lag.late_ms, 0.99), 1) if lag.late_ms else None,
        "loop_stall_max_ms": round(max(lag.late_ms), 1) if lag.late_ms else None,
        "loop_held_p99_ms": round(percentile(lag.held_ms, 0.99), 1) if lag.held_ms else None,
        "loop_held_max_ms": round(max(lag.held_ms), 1) if lag.held_ms else None,
        **collections.figures(),
        "quit_s": round(time.monotonic() - quitting, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, nargs="*", default=[64, 256, 1024])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--whole-samples", action="store_true", help="demo hosts send whole samples, not changes")
    p.add_argument(
        "--sampled-per-feed",
        type=int,
        default=0,
        metavar="K",
        help="each demo feed (512 hosts) samples only K of them and sends the others copies of their frames, "
        "for a machine that cannot sample every host each second (see samples_per_host_s); a multiple of 8",
    )
    args = p.parse_args()
    if args.whole_samples:
        DemoFleet.keyframe_every = 0
    DemoFleet.sampled_per_feed = args.sampled_per_feed
    if len(args.hosts) == 1:
        print(json.dumps(asyncio.run(measure(args.hosts[0], args.seconds))), flush=True)
        return
    for hosts in args.hosts:  # one process each, so that peak RSS is that size's own
        whole = ["--whole-samples"] if args.whole_samples else []
        sampled = ["--sampled-per-feed", str(args.sampled_per_feed)]
        argv = [sys.executable, __file__, "--hosts", str(hosts), "--seconds", str(args.seconds), *whole, *sampled]
        subprocess.run(argv, check=True)


if __name__ == "__main__":
    main()
