"""Agent cost per sample on 8 simulated GPUs: CPU time, NVML calls, bytes.

Run by hand (``make bench`` or ``python bench/agent_cost.py``); not a test.
The agent's real sampling code runs against the simulator, so the CPU time
includes the simulator's own work and is an upper bound for the agent alone;
the NVML call count and frame size are exact. The event API's calls (XIDs)
are counted apart: the agent makes them from its own thread, outside the
per-GPU sampling budget; here they are the one non-blocking ask per sample
that the in-process demo makes. The compressed size is of the frame stream
through one deflate stream, as SSH compression sends it. The exporter's cost
(``--metrics-listen``) is a scrape's: formatting the latest sample, no NVML call.
With ``--changes N`` the samples are written as ``gputui agent --changes`` writes
them (a keyframe every N, deltas between), the encoding's CPU time included.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
import zlib

from gputui.agent.changes import ChangeEncoder
from gputui.agent.exporter import Latest
from gputui.agent.sampler import Sampler
from gputui.sim.nvml import SimNvml


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def measure(scenario: str, gpus: int, samples: int, processes: str, changes: int = 0) -> dict[str, object]:
    clock = Clock()
    sim = SimNvml(scenario, seed=1, gpus=gpus, processes=processes, clock=clock)
    sampler = Sampler(sim, describe=sim.describe_process, clock=clock)
    try:
        hello_frame = sampler.hello(1.0)
        hello = json.dumps(hello_frame, separators=(",", ":"))
        latest = Latest()
        latest.set_hello(hello_frame)
        encoder = ChangeEncoder(changes) if changes else None
        first = sampler.sample()  # the first, complete sample is not the steady state
        latest.update(first)
        if encoder is not None:
            encoder.encode(first)
        calls, cpu, sizes, packed = [], [], [], []
        deflate = zlib.compressobj(6)
        events_before = sampler.xids.calls if sampler.xids else 0
        for _ in range(samples):
            clock.now += 1.0
            t0 = time.process_time()
            frame = sampler.sample()
            latest.update(frame)  # what the agent's loop hands the exporter
            line = json.dumps(encoder.encode(frame) if encoder else frame, separators=(",", ":"))
            cpu.append(time.process_time() - t0)
            calls.append(frame["nvml_calls"] / gpus)
            sizes.append(len(line) + 1)
            data = (line + "\n").encode()
            packed.append(len(deflate.compress(data)) + len(deflate.flush(zlib.Z_SYNC_FLUSH)))
        event_calls = (sampler.xids.calls if sampler.xids else 0) - events_before
        calls_before_scrapes = sampler.caller.calls
        scrape_cpu, scrape = [], ""
        for _ in range(50):
            t0 = time.process_time()
            scrape = latest.render()
            scrape_cpu.append(time.process_time() - t0)
        assert sampler.caller.calls == calls_before_scrapes, "a scrape made NVML calls"
    finally:
        sim.close()
    return {
        "scenario": scenario,
        "gpus": gpus,
        "processes": processes,
        "samples": samples,
        "keyframe_every": changes or None,
        "nvml_calls_per_gpu_per_sample_mean": round(statistics.mean(calls), 2),
        "nvml_calls_per_gpu_per_sample_max": round(max(calls), 2),
        "cpu_ms_per_sample_mean": round(1000 * statistics.mean(cpu), 3),
        "cpu_ms_per_sample_p99": round(1000 * sorted(cpu)[int(0.99 * (len(cpu) - 1))], 3),
        "cpu_pct_of_one_core_at_1s": round(100 * statistics.mean(cpu), 3),
        "bytes_per_sample_frame_mean": round(statistics.mean(sizes)),
        "bytes_per_sample_frame_deflated_mean": round(statistics.mean(packed)),
        "event_api_calls_per_sample": round(event_calls / samples, 2),
        "bytes_hello": len(hello) + 1,
        "exporter_cpu_ms_per_scrape_mean": round(1000 * statistics.mean(scrape_cpu), 3),
        "exporter_bytes_per_scrape": len(scrape.encode()),
        "exporter_bytes_per_scrape_gzipped": len(gzip.compress(scrape.encode(), 6)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=600)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--changes", type=int, default=0, metavar="N", help="samples as changes, a keyframe every N")
    args = p.parse_args()
    for scenario, processes in (
        ("healthy", "standin"),
        ("healthy", "synthetic"),
        ("incident", "synthetic"),
        ("mixed", "synthetic"),
    ):
        print(json.dumps(measure(scenario, args.gpus, args.samples, processes, args.changes)))


if __name__ == "__main__":
    main()
