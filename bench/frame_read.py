"""The CPU of reading one second of frames from N demo hosts, with nothing else running.

Run by hand (``python bench/frame_read.py --hosts 1024``); not a test. In the
dashboard, reading frames (parsing each line, applying a host's changes to
its last sample, storing it, taking it out of the garbage collector's walk and
pushing each GPU's history) is about a third of the app's CPU at 1,024 hosts,
measured there in wall time next to the demo's feed processes. This one
makes the demo fleet's real lines first (sampled by the agent's sampler on
simulated GPUs, sent as changes with a keyframe every ten samples, as the
demo's feeds write them), then times the dashboard's own reading of them
(``FrameDecoder.frame`` and ``FleetStore.apply``) in the thread's CPU time,
with the collector held off: comparable from one commit to the next on the
same machine. The event loop and the transport are not in it.

For each size it prints one JSON line: the median and fastest second of
frames (ms of CPU for every host's line of that second) and the microseconds
per host.
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
from gputui.fleet.store import FleetStore

WARM_UP = 10  # one keyframe cycle, so that every GPU's history is allocated before timing


def measure(hosts: int, seconds: int) -> dict[str, object]:
    fleet = DemoLines(hosts)
    hellos = fleet.hellos()
    seconds_of = [fleet.second() for _ in range(WARM_UP + seconds)]  # made first: only reading is timed
    clock = [1000.0]
    store = FleetStore(clock=lambda: clock[0])
    decoders = connected(fleet.names, hellos, store)
    cpu_ms: list[float] = []
    for lines in seconds_of:
        clock[0] += 1.0
        gc.disable()
        started = time.thread_time()
        apply_second(store, fleet.names, decoders, lines)
        cpu_ms.append(1000 * (time.thread_time() - started))
        gc.enable()
    timed = cpu_ms[WARM_UP:]
    p50 = statistics.median(timed)
    return {
        "hosts": hosts,
        "gpus": hosts * 8,
        "seconds": len(timed),
        "read_second_cpu_p50_ms": round(p50, 1),
        "read_second_cpu_min_ms": round(min(timed), 1),
        "us_per_host": round(1000 * p50 / hosts, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, nargs="*", default=[1024])
    p.add_argument("--seconds", type=int, default=20)
    args = p.parse_args()
    for hosts in args.hosts:
        print(json.dumps(measure(hosts, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
