"""The demo's simulated hosts, run in a child process: one line per frame.

``python -m gputui.sources.demo_feed --first A --count N ...`` runs the
agent's real sampler on simulated GPUs for hosts A..A+N-1 and writes
``<host>\\t<frame JSON>`` lines. Sampling a thousand hosts costs a good
part of a core; in a child process it is the fleet's cost, as it would be
on real hosts, not the dashboard's. The child exits when its parent does
(stdin closes or stdout breaks).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable

from gputui.agent.changes import ChangeEncoder
from gputui.agent.sampler import Sampler
from gputui.sim.nvml import SimNvml

FLEET = "fleet"  # a mix: mostly healthy, some mixed, one host in eight in trouble


def scenario_for(scenario: str, host_no: int) -> str:
    if scenario != FLEET:
        return scenario
    if host_no % 8 == 2:
        return "incident"
    if host_no % 4 == 1:
        return "mixed"
    return "healthy"


def host_names(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"gpu-{i + 1:0{width}d}" for i in range(count)]


def make_sampler(
    scenario: str, seed: int, gpus: int | None, host_no: int, name: str, clock: Callable[[], float] = time.monotonic
) -> Sampler:
    """One demo host; ``clock`` is its GPUs' (a bench steps it a second at a time, without waiting)."""
    seed = seed * 1009 + host_no
    sim = SimNvml(scenario_for(scenario, host_no), seed=seed, gpus=gpus, processes="synthetic", host_no=host_no, clock=clock)
    return Sampler(sim, host=name, source=f"sim:{sim.scenario.name}", describe=sim.describe_process)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--total", type=int, required=True, help="hosts in the whole demo fleet (for names)")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--gpus", type=int, default=None)
    p.add_argument("--scenario", default=FLEET)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--keyframe-every", type=int, default=0, help="samples as changes, as `gputui agent --changes` (0: whole)")
    args = p.parse_args(argv)
    names = host_names(args.total)
    hosts = range(args.first, min(args.total, args.first + args.count))
    samplers = [(names[i], make_sampler(args.scenario, args.seed, args.gpus, i, names[i])) for i in hosts]
    every = args.keyframe_every
    # Each host's keyframes at its own phase: a thousand whole samples in one second would be a spike.
    encoders = {name: ChangeEncoder(every, phase=i) for i, (name, _) in enumerate(samplers)} if every > 0 else {}
    stop = threading.Event()

    def until_parent_goes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_parent_goes, daemon=True).start()
    out = sys.stdout
    try:
        for name, s in samplers:
            hello = s.hello(args.interval)
            hello = encoders[name].hello(hello) if encoders else hello
            out.write(f"{name}\t{json.dumps(hello, separators=(',', ':'))}\n")
        out.flush()
        next_at = time.monotonic()
        while not stop.is_set():
            for name, s in samplers:
                frame = encoders[name].encode(s.sample()) if encoders else s.sample()
                out.write(f"{name}\t{json.dumps(frame, separators=(',', ':'))}\n")
            out.flush()
            next_at += args.interval
            stop.wait(max(0.0, next_at - time.monotonic()))
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
