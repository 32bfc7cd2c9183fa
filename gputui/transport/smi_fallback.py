"""Reduced telemetry from ``nvidia-smi`` where a host has no usable python3.

``nvidia-smi --query-gpu ... -lms N`` streams one CSV line per GPU per
interval; each round (the index going back to 0) becomes a sample frame, and
the first round also gives a hello. The process list comes from
``--query-compute-apps`` every other interval. Whatever nvidia-smi cannot
give (user, command, throttle reasons, remapped rows...) is null, and the
source is marked ``nvidia-smi`` so the UI can say the host is reduced.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import asyncssh

from gputui.agent import PROTOCOL_VERSION
from gputui.transport.base import LinkError
from gputui.transport.lines import split_lines

GPU_FIELDS = (
    "index", "uuid", "name", "pci.bus_id", "driver_version", "memory.total", "memory.used",
    "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "power.limit",
    "clocks.sm", "clocks.mem", "fan.speed", "pstate", "compute_mode", "ecc.errors.uncorrected.volatile.total",
)  # fmt: skip
APP_FIELDS = ("gpu_uuid", "pid", "used_memory")
SOURCE = "nvidia-smi"
MAX_GPUS = 64


def value(text: str) -> str | None:
    """nvidia-smi's ways of saying "no value" all become None."""
    text = text.strip()
    if not text or text.startswith("[") or text in ("N/A", "Not Supported"):
        return None
    return text


def number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    n = number(text)
    return None if n is None else int(n)


def parse_gpu_line(line: str) -> dict[str, str | None]:
    parts = [value(p) for p in line.split(",")]
    if len(parts) != len(GPU_FIELDS):
        raise LinkError(f"nvidia-smi printed {len(parts)} fields where {len(GPU_FIELDS)} were asked for: {line[:120]!r}")
    return dict(zip(GPU_FIELDS, parts, strict=True))


def hello_frame(rows: list[dict[str, str | None]], host: str, interval: float) -> dict[str, object]:
    gpus = [
        {
            "index": _int(r["index"]),
            "uuid": r["uuid"],
            "name": r["name"],
            "pci_bus_id": r["pci.bus_id"],
            "mem_total_mib": _int(r["memory.total"]),
            "power_default_w": number(r["power.limit"]),
        }
        for r in rows
    ]
    return {
        "type": "hello", "v": PROTOCOL_VERSION, "t": round(time.time(), 3), "agent_version": "nvidia-smi",
        "host": host, "source": SOURCE, "driver_version": rows[0]["driver_version"] if rows else None,
        "interval_s": interval, "gpus": gpus,
    }  # fmt: skip


def sample_frame(rows: list[dict[str, str | None]], seq: int, apps: dict[str, list[dict[str, object]]]) -> dict[str, object]:
    gpus = []
    for r in rows:
        mode = r["compute_mode"]
        gpus.append(
            {
                "index": _int(r["index"]),
                "uuid": r["uuid"],  # not in the frame model: used to attach processes
                "util_pct": _int(r["utilization.gpu"]),
                "mem_util_pct": _int(r["utilization.memory"]),
                "mem_used_mib": _int(r["memory.used"]),
                "mem_total_mib": _int(r["memory.total"]),
                "temp_c": _int(r["temperature.gpu"]),
                "power_w": number(r["power.draw"]),
                "power_limit_w": number(r["power.limit"]),
                "sm_clock_mhz": _int(r["clocks.sm"]),
                "mem_clock_mhz": _int(r["clocks.mem"]),
                "fan_pct": _int(r["fan.speed"]),
                "pstate": r["pstate"],
                "compute_mode": mode.lower().replace(" ", "_") if mode else None,
                "ecc": {"volatile_uncorrected": _int(r["ecc.errors.uncorrected.volatile.total"])},
                "processes": apps.get(r["uuid"] or "", []),
            }
        )
    return {"type": "sample", "v": PROTOCOL_VERSION, "t": round(time.time(), 3), "seq": seq, "gpus": gpus}


def parse_apps(text: str) -> dict[str, list[dict[str, object]]]:
    apps: dict[str, list[dict[str, object]]] = {}
    for line in text.splitlines():
        parts = [value(p) for p in line.split(",")]
        if len(parts) != len(APP_FIELDS) or parts[0] is None or _int(parts[1]) is None:
            continue
        apps.setdefault(parts[0], []).append({"pid": _int(parts[1]), "gpu_mem_mib": _int(parts[2])})
    return apps


class SmiRounds:
    """Groups nvidia-smi's lines into rounds (one line per GPU): a round ends
    when it has as many GPUs as the first one had, or when the index goes
    back, so that a sample is sent as soon as it is complete."""

    def __init__(self, host: str, interval: float) -> None:
        self.host = host
        self.interval = interval
        self.rows: list[dict[str, str | None]] = []
        self.expected: int | None = None
        self.last_index = -1
        self.seq = 0
        self.apps: dict[str, list[dict[str, object]]] = {}

    def add(self, row: dict[str, str | None]) -> list[dict[str, object]]:
        index = _int(row["index"])
        if index is None:
            return []
        out = []
        if self.rows and (index <= self.last_index or len(self.rows) >= MAX_GPUS):
            out += self._flush()
        self.rows.append(row)
        self.last_index = index
        if self.expected is not None and len(self.rows) == self.expected:
            out += self._flush()
        return out

    def _flush(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        if self.expected is None:
            self.expected = len(self.rows)
            out.append(hello_frame(self.rows, self.host, self.interval))
        out.append(sample_frame(self.rows, self.seq, self.apps))
        self.seq += 1
        self.rows = []
        self.last_index = -1
        return out

    def with_apps(self, frame: dict[str, object]) -> dict[str, object]:
        """The frame again, with the process list just read."""
        gpus = frame["gpus"]
        assert isinstance(gpus, list)
        for gpu in gpus:
            gpu["processes"] = self.apps.get(gpu.get("uuid") or "", [])
        return frame


async def smi_lines(conn: asyncssh.SSHClientConnection, host: str, interval: float) -> AsyncIterator[bytes]:
    ms = max(100, int(interval * 1000))
    query = f"nvidia-smi --query-gpu={','.join(GPU_FIELDS)} --format=csv,noheader,nounits -lms {ms}"
    apps_query = f"nvidia-smi --query-compute-apps={','.join(APP_FIELDS)} --format=csv,noheader,nounits"
    proc = await conn.create_process(query, encoding=None)
    rounds = SmiRounds(host, interval)
    async for raw in split_lines(proc.stdout.read):
        try:
            row = parse_gpu_line(raw.decode("utf-8", "replace").strip())
        except LinkError:
            continue  # an error line for one GPU (a lost one, say): skip it, keep the rest
        for frame in rounds.add(row):
            if frame["type"] == "sample" and frame["seq"] % 2 == 0:  # type: ignore[operator]
                result = await conn.run(apps_query, check=False)
                rounds.apps = parse_apps(str(result.stdout or ""))
                frame = rounds.with_apps(frame)
            yield json.dumps(frame).encode()
    err = await proc.stderr.read()
    detail = err.decode("utf-8", "replace").strip()[:200] if isinstance(err, bytes) else ""
    raise LinkError(f"no python3 3.8+ on the host, and nvidia-smi ended: {detail or 'no output'}")
