"""Reduced telemetry from ``nvidia-smi`` where a host has no usable python3.

``nvidia-smi --query-gpu ... -lms N`` streams one CSV line per GPU per
interval; each round (the index going back to 0) becomes a sample frame, and
the first round also gives a hello. The process list comes from
``--query-compute-apps`` every other interval. Whatever nvidia-smi cannot
give (user, command, remapped rows, NVLink...) is null, and the source is
marked ``nvidia-smi`` so the UI can say the host is reduced.

The health rules still need a slowdown point and the throttle reasons, so
the query asks for them too (see :data:`OPTIONAL_FIELDS`). An older
nvidia-smi refuses a whole query over one field it does not know, so a
refused field is dropped, the query started again without it, and the
host's link remembers the refusal so that a reconnect does not ask again;
the hello lists what is missing. A slowdown point nvidia-smi cannot give
comes from the host's ``temp_slowdown_c`` in the config, else from
:data:`gputui.gpu_facts.MODEL_LIMITS`. The extra fields cost about 16 B/s on the compressed
wire for 8 GPUs at 1 s (about 90 B/s before), well inside 1 KB/s.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Sequence

import asyncssh

from gputui.gpu_facts import model_limits, reasons_of
from gputui.protocol import PROTOCOL_VERSION
from gputui.transport.base import LinkError
from gputui.transport.lines import split_lines

GPU_FIELDS = (
    "index", "uuid", "name", "pci.bus_id", "driver_version", "memory.total", "memory.used",
    "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "power.limit",
    "clocks.sm", "clocks.mem", "fan.speed", "pstate", "compute_mode", "ecc.errors.uncorrected.volatile.total",
)  # fmt: skip
# Fields some nvidia-smi versions do not know. Only the bitmask of the clock-event
# reasons is asked for: it says everything the per-reason "Active"/"Not Active"
# fields say in 18 characters instead of about 70 a GPU each interval.
TLIMIT = "temperature.gpu.tlimit"
MEM_TEMP = "temperature.memory"
REASONS = "clocks_throttle_reasons.active"
OPTIONAL_FIELDS = (TLIMIT, MEM_TEMP, REASONS)
# A refused field's other name: drivers from 535 call the reasons clock events
# (and still answer the old name), so a future one may answer the new name only.
OTHER_NAMES = {REASONS: "clocks_event_reasons.active"}
APP_FIELDS = ("gpu_uuid", "pid", "used_memory")
SOURCE = "nvidia-smi"
MAX_GPUS = 64
REFUSED = re.compile(r'Field\s+["\u201c\u201d]?([^"\u201c\u201d\s]+)["\u201c\u201d]?\s+is not a valid field to query')


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


def parse_gpu_line(line: str, fields: Sequence[str] = GPU_FIELDS) -> dict[str, str | None]:
    """One CSV line as field -> value, keyed by the names in ``fields`` (the
    optional fields under their names here, whichever name was asked for)."""
    parts = [value(p) for p in line.split(",")]
    if len(parts) != len(fields):
        raise LinkError(f"nvidia-smi printed {len(parts)} fields where {len(fields)} were asked for: {line[:120]!r}")
    return dict(zip(fields, parts, strict=True))


def temp_limits(row: dict[str, str | None], configured_slowdown_c: int | None) -> dict[str, object]:
    """A GPU's slowdown and shutdown points, and where they come from.

    T.Limit is the margin to the GPU's nearest slowdown threshold (NVML's
    margin temperature), so temperature plus margin is where it starts to
    slow down: the GPU's own number, preferred to the config's, which is
    preferred to the model's default. Only the model table gives a shutdown
    point: nvidia-smi's query has none."""
    temp, margin = _int(row.get("temperature.gpu")), _int(row.get(TLIMIT))
    model = model_limits(row.get("name"))
    shutdown = model[1][1] if model else None
    if temp is not None and margin is not None:
        return {"temp_slowdown_c": temp + margin, "temp_shutdown_c": shutdown, "temp_limits_from": "nvidia-smi T.Limit"}
    if configured_slowdown_c is not None:
        return {"temp_slowdown_c": configured_slowdown_c, "temp_shutdown_c": shutdown, "temp_limits_from": "config"}
    if model is not None:
        return {"temp_slowdown_c": model[1][0], "temp_shutdown_c": shutdown, "temp_limits_from": f"{model[0]} default"}
    return {}


def throttle_reasons(mask_text: str | None) -> list[str] | None:
    """The active clock-event reasons by name, [] for none; None when not known
    (not asked for, or the GPU does not say), which the rules do not read as none."""
    if mask_text is None:
        return None
    try:
        mask = int(mask_text, 16)
    except ValueError:
        return None
    return reasons_of(mask)


def hello_frame(
    rows: list[dict[str, str | None]],
    host: str,
    interval: float,
    slowdown_c: int | None = None,
    missing: Sequence[str] = (),
) -> dict[str, object]:
    gpus = [
        {
            "index": _int(r["index"]),
            "uuid": r["uuid"],
            "name": r["name"],
            "pci_bus_id": r["pci.bus_id"],
            "mem_total_mib": _int(r["memory.total"]),
            "power_default_w": number(r["power.limit"]),
            **temp_limits(r, slowdown_c),
        }
        for r in rows
    ]
    return {
        "type": "hello", "v": PROTOCOL_VERSION, "t": round(time.time(), 3), "agent_version": "nvidia-smi",
        "host": host, "source": SOURCE, "driver_version": rows[0]["driver_version"] if rows else None,
        "interval_s": interval, "gpus": gpus, "missing_fields": sorted(missing),
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
                "mem_temp_c": _int(r.get(MEM_TEMP)),
                "power_w": number(r["power.draw"]),
                "power_limit_w": number(r["power.limit"]),
                "sm_clock_mhz": _int(r["clocks.sm"]),
                "mem_clock_mhz": _int(r["clocks.mem"]),
                "fan_pct": _int(r["fan.speed"]),
                "pstate": r["pstate"],
                "throttle": throttle_reasons(r.get(REASONS)),
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

    def __init__(self, host: str, interval: float, slowdown_c: int | None = None, missing: Sequence[str] = ()) -> None:
        self.host = host
        self.interval = interval
        self.slowdown_c = slowdown_c
        self.missing = tuple(missing)
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
            out.append(hello_frame(self.rows, self.host, self.interval, self.slowdown_c, self.missing))
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


def query_fields(refused: set[str]) -> tuple[list[str], list[str], list[str]]:
    """What to ask for (the names nvidia-smi is to be sent), the names the
    rows are keyed by, and the optional fields missing, given those refused."""
    asked, keys, missing = list(GPU_FIELDS), list(GPU_FIELDS), []
    for field in OPTIONAL_FIELDS:
        name = field if field not in refused else OTHER_NAMES.get(field)
        if name is None or name in refused:
            missing.append(field)
            continue
        asked.append(name)
        keys.append(field)
    return asked, keys, missing


def refuse(refused: set[str], line: str) -> bool:
    """Note the field nvidia-smi refused in ``line``; False when it is not an
    optional one (or the words are not understood): then every optional field
    is given up, so that the retry is the plain query that always worked."""
    match = REFUSED.search(line)
    field = match.group(1) if match else None
    optional = set(OPTIONAL_FIELDS) | set(OTHER_NAMES.values())
    if field in optional and field not in refused:
        refused.add(field)
        return True
    before = len(refused)
    refused.update(optional)
    return len(refused) > before


async def smi_lines(
    conn: asyncssh.SSHClientConnection,
    host: str,
    interval: float,
    slowdown_c: int | None = None,
    refused: set[str] | None = None,
    why: str = "no python3 3.8+ on the host",
) -> AsyncIterator[bytes]:
    """``slowdown_c``: the configured slowdown point, for GPUs whose nvidia-smi
    has no T.Limit. ``refused``: the fields this host's nvidia-smi refused,
    kept by the caller across connections and added to here."""
    ms = max(100, int(interval * 1000))
    apps_query = f"nvidia-smi --query-compute-apps={','.join(APP_FIELDS)} --format=csv,noheader,nounits"
    refused = set() if refused is None else refused
    while True:
        asked, keys, missing = query_fields(refused)
        query = f"nvidia-smi --query-gpu={','.join(asked)} --format=csv,noheader,nounits -lms {ms}"
        proc = await conn.create_process(query, encoding=None)
        rounds = SmiRounds(host, interval, slowdown_c, missing)
        refusal = None
        async for raw in split_lines(proc.stdout.read):
            text = raw.decode("utf-8", "replace").strip()
            if rounds.expected is None and "is not a valid field to query" in text:
                refusal = text
                break
            try:
                row = parse_gpu_line(text, keys)
            except LinkError:
                continue  # an error line for one GPU (a lost one, say): skip it, keep the rest
            for frame in rounds.add(row):
                if frame["type"] == "sample" and frame["seq"] % 2 == 0:  # type: ignore[operator]
                    result = await conn.run(apps_query, check=False)
                    rounds.apps = parse_apps(str(result.stdout or ""))
                    frame = rounds.with_apps(frame)
                yield json.dumps(frame).encode()
        if refusal is not None:
            proc.close()
            if refuse(refused, refusal):
                continue  # again, without the refused field
            raise LinkError(f"{why}, and nvidia-smi refused its query: {refusal[:200]}")
        err = await proc.stderr.read()
        detail = err.decode("utf-8", "replace").strip()[:200] if isinstance(err, bytes) else ""
        raise LinkError(f"{why}, and nvidia-smi ended: {detail or 'no output'}")
