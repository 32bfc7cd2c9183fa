"""Health test data: a GPU as the agent reports it, and one host fed real
frames on clocks the test moves by hand."""

from __future__ import annotations

import json
from typing import Any

from gputui.config import Thresholds
from gputui.fleet.store import FleetStore
from gputui.frames import Hello, Sample, parse_frame
from gputui.health.engine import HealthEngine
from gputui.protocol import PROTOCOL_VERSION

T0 = 1_795_000_000.0  # wall clock at the start of each test
HOST = "gpu-01"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def gpu(index: int = 0, **values: Any) -> dict[str, Any]:
    """A healthy busy H100 as the agent reports it, with ``values`` changed."""
    base: dict[str, Any] = {
        "index": index,
        "util_pct": 80,
        "mem_used_mib": 20000,
        "mem_total_mib": 81559,
        "temp_c": 60,
        "power_w": 450.0,
        "power_limit_w": 700.0,
        "throttle": [],
        "ecc": {"volatile_corrected": 0, "volatile_uncorrected": 0, "aggregate_corrected": 1, "aggregate_uncorrected": 0},
        "remapped_rows": {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False},
        "persistence_mode": True,
        "pcie_replays": 2,
        "nvlink": {"crc_flit": 1, "crc_data": 0, "replay": 0, "recovery": 0},
        "processes": [{"pid": 4242, "user": "alice", "gpu_mem_mib": 19500, "started_at": T0 - 600, "slurm_job": "77"}],
    }
    base.update(values)
    return base


class Fleet:
    """One host fed real frames, a wall clock and a monotonic clock that move together."""

    def __init__(self, gpus: int = 1, interval: float = 1.0, **thresholds: Any) -> None:
        self.wall = Clock(T0)
        self.mono = Clock(1000.0)
        self.store = FleetStore(clock=self.mono)
        self.store.add_host(HOST)
        self.seq = 0
        self.thresholds = Thresholds(**thresholds)
        board = {"name": "NVIDIA H100 80GB HBM3", "temp_slowdown_c": 89, "temp_shutdown_c": 92}
        statics = [dict(board, index=i) for i in range(gpus)]
        self.apply({"type": "hello", "v": PROTOCOL_VERSION, "t": T0, "agent_version": "0.1", "host": HOST,
                    "interval_s": interval, "gpus": statics})  # fmt: skip

    def apply(self, frame: dict[str, Any]) -> None:
        parsed = parse_frame(json.dumps(frame))
        assert isinstance(parsed, Hello | Sample)
        self.store.apply(HOST, parsed)

    def sample(self, *gpus: dict[str, Any], events: list[dict[str, Any]] | None = None, step: float = 1.0) -> None:
        """Time passes by ``step`` seconds, then a sample arrives."""
        self.wall.t += step
        self.mono.t += step
        frame = {"type": "sample", "v": PROTOCOL_VERSION, "t": self.wall.t, "seq": self.seq, "gpus": list(gpus)}
        if events:
            frame["events"] = events
        self.apply(frame)
        self.seq += 1

    def engine(self, hold_s: float | None = None, clear_s: float | None = None) -> HealthEngine:
        return HealthEngine(self.thresholds, clock=self.wall, hold_s=hold_s, clear_s=clear_s)
