"""The CPU of one health pass over N demo hosts, with nothing else running.

Run by hand (``python bench/health_pass.py --hosts 1024 4096``); not a test.
``bench/ui_scale.py`` times the pass inside the running dashboard, in wall
time, next to the demo's feed processes on the same cores, so its figure
moves with how busy the machine is. This one feeds a store in-process with
the demo fleet's real samples (sampled by the agent's sampler on simulated
GPUs, a simulated second apart, sent as changes and decoded as the dashboard decodes them), then times
``HealthEngine.evaluate`` in the thread's CPU time, with the garbage
collector held off while it runs: the engine's own cost, comparable from one
commit to the next on the same machine. (The collector's pauses depend on
everything else the process holds; ``bench/ui_scale.py`` measures them in
the dashboard, as it tunes them.)

For each size it prints one JSON line: the median and fastest pass (ms of
CPU, after three passes to warm up) and how many alerts the last pass gave.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: the repo's root

from bench.demo_lines import DemoLines, apply_second, connected
from gputui.config import Thresholds
from gputui.fleet.store import FleetStore
from gputui.health.engine import HealthEngine

WARM_UP = 3


def measure(hosts: int, passes: int) -> dict[str, object]:
    fleet = DemoLines(hosts)
    mono, wall = [1000.0], [1_795_000_000.0]
    store = FleetStore(clock=lambda: mono[0])
    decoders = connected(fleet.names, fleet.hellos(), store)
    engine = HealthEngine(Thresholds(), clock=lambda: wall[0])
    cpu_ms: list[float] = []
    alerts = 0
    for _ in range(WARM_UP + passes):
        mono[0] += 1.0
        wall[0] += 1.0
        apply_second(store, fleet.names, decoders, fleet.second())
        gc.disable()
        started = time.thread_time()
        alerts = len(engine.evaluate(store))
        cpu_ms.append(1000 * (time.thread_time() - started))
        gc.enable()
    timed = cpu_ms[WARM_UP:]
    return {
        "hosts": hosts,
        "gpus": hosts * 8,
        "passes": len(timed),
        "health_pass_cpu_p50_ms": round(statistics.median(timed), 1),
        "health_pass_cpu_min_ms": round(min(timed), 1),
        "alerts": alerts,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, nargs="*", default=[1024])
    p.add_argument("--passes", type=int, default=15)
    args = p.parse_args()
    for hosts in args.hosts:
        print(json.dumps(measure(hosts, args.passes)), flush=True)


if __name__ == "__main__":
    main()
