"""The demo's simulated hosts, run in a child process: one line per frame.

``python -m gputui.sources.demo_feed --first A --count N ...`` runs the
agent's real sampler on simulated GPUs for hosts A..A+N-1 and writes
``<host>\\t<frame JSON>`` lines. Sampling a host costs about 2 ms a second
(on a slow 2-core machine a feed of 512 hosts needed 1.1 s of a core for
each round); in a child process it is the fleet's cost, as it would be on
real hosts, not the dashboard's. Where the machine cannot afford that, a
benchmark asks for ``--sampled K``: only K hosts are sampled and every other
host is sent the frames of one of them, under its own name and hello, so
the dashboard still reads, stores and judges one frame per host per second.
The child exits when its parent does (stdin closes or stdout breaks).
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
    p.add_argument(
        "--sampled", type=int, default=0, help="sample only this many hosts; each other host is sent one's frames (0: none)"
    )
    args = p.parse_args(argv)
    names = host_names(args.total)
    hosts = range(args.first, min(args.total, args.first + args.count))
    sampled = hosts[: args.sampled] if args.sampled > 0 else hosts
    samplers = [make_sampler(args.scenario, args.seed, args.gpus, i, names[i]) for i in sampled]
    # Host k of this feed is sent sampler k % len(samplers)'s frames: with as many samplers as
    # hosts, its own. A multiple of 8 keeps every host's scenario (scenario_for), copy or not.
    sent_as = [[names[i] for i in hosts[k :: len(samplers)]] for k in range(len(samplers))]
    every = args.keyframe_every
    # Each host's keyframes at its own phase: a thousand whole samples in one second would be a spike.
    encoders = [ChangeEncoder(every, phase=k) if every > 0 else None for k in range(len(samplers))]
    streams = list(zip(samplers, encoders, sent_as, strict=True))
    stop = threading.Event()

    def until_parent_goes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_parent_goes, daemon=True).start()
    out = sys.stdout
    try:
        for sampler, encoder, copies in streams:
            hello = sampler.hello(args.interval)
            hello = encoder.hello(hello) if encoder else hello
            for name in copies:
                out.write(f"{name}\t{json.dumps(dict(hello, host=name), separators=(',', ':'))}\n")
        out.flush()
        next_at = time.monotonic()
        while not stop.is_set():
            for sampler, encoder, copies in streams:
                frame = encoder.encode(sampler.sample()) if encoder else sampler.sample()
                line = json.dumps(frame, separators=(",", ":"))
                for name in copies:
                    out.write(f"{name}\t{line}\n")
            out.flush()
            next_at += args.interval
            stop.wait(max(0.0, next_at - time.monotonic()))
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
