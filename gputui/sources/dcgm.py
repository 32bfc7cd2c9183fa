"""dcgm-exporter's metrics, as a Prometheus query returns them, turned into frames.

A pure translation, no I/O: :class:`Reading` gathers one refresh's answers
(every family's values, the inventory with every label, each host's
latest scrape time and the GPUs whose XID changed lately) and
:class:`HostFrames` makes one host's ``hello`` (when its GPUs first appear or
change) and ``sample`` (only when the host was scraped again since the last
one: the sample's own time decides live and stale, as for an SSH host).

The semantics that differ from NVML's, kept as the health rules expect them:

- ``DCGM_FI_DEV_XID_ERRORS`` holds the *last* XID and never resets, so an
  XID is an event only when the gauge changed lately (``changes()`` over a
  window), reported once per value; a non-zero value alone says nothing new.
- A family the host does not export (ECC and retired pages are commented out
  in dcgm-exporter's default counters) is ``None`` and listed in the hello's
  ``missing_fields``, never 0. A NaN or infinite value is ``None`` too, with
  the reason in the GPU's ``field_errors``.
- A GPU in MIG mode is reported per GPU instance (``GPU_I_ID``,
  ``GPU_I_PROFILE``): board-wide values repeat on each, the framebuffer is
  each instance's own and is summed for the board.
- A GPU that was in the hello and has no series while its host is still
  scraped is ``lost``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gputui.gpu_facts import model_limits, reasons_of
from gputui.protocol import PROTOCOL_VERSION

# Plain per-GPU values: metric family -> the sample's field.
VALUES: Mapping[str, str] = {
    "DCGM_FI_DEV_GPU_UTIL": "util_pct",
    "DCGM_FI_DEV_MEM_COPY_UTIL": "mem_util_pct",
    "DCGM_FI_DEV_GPU_TEMP": "temp_c",
    "DCGM_FI_DEV_MEMORY_TEMP": "mem_temp_c",
    "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT": "power_limit_w",
    "DCGM_FI_DEV_SM_CLOCK": "sm_clock_mhz",
    "DCGM_FI_DEV_MEM_CLOCK": "mem_clock_mhz",
    "DCGM_FI_DEV_FAN_SPEED": "fan_pct",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "pcie_replays",
}
# Values that make up one of the sample's sub-objects: family -> (object, its field).
PARTS: Mapping[str, tuple[str, str]] = {
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": ("ecc", "volatile_corrected"),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("ecc", "volatile_uncorrected"),
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL": ("ecc", "aggregate_corrected"),
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL": ("ecc", "aggregate_uncorrected"),
    "DCGM_FI_DEV_RETIRED_SBE": ("retired_pages", "single_bit"),
    "DCGM_FI_DEV_RETIRED_DBE": ("retired_pages", "double_bit"),
    "DCGM_FI_DEV_RETIRED_PENDING": ("retired_pages", "pending"),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": ("remapped_rows", "correctable"),
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": ("remapped_rows", "uncorrectable"),
    "DCGM_FI_DEV_ROW_REMAP_PENDING": ("remapped_rows", "pending"),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": ("remapped_rows", "failure"),
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL": ("nvlink", "crc_flit"),
    "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL": ("nvlink", "crc_data"),
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL": ("nvlink", "replay"),
    "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL": ("nvlink", "recovery"),
}
BOOL_PARTS = {"DCGM_FI_DEV_RETIRED_PENDING", "DCGM_FI_DEV_ROW_REMAP_PENDING", "DCGM_FI_DEV_ROW_REMAP_FAILURE"}
FB_USED, FB_FREE, FB_RESERVED = "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED"
# The throttle bitmask: DCGM 3.3 renamed the field; either may come.
REASONS = ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS")
SLOWDOWN, SHUTDOWN = "DCGM_FI_DEV_SLOWDOWN_TEMP", "DCGM_FI_DEV_SHUTDOWN_TEMP"
XID = "DCGM_FI_DEV_XID_ERRORS"
FAMILIES: tuple[str, ...] = (
    *VALUES, *PARTS, FB_USED, FB_FREE, FB_RESERVED, *REASONS, SLOWDOWN, SHUTDOWN, XID,
)  # fmt: skip
# What a host that lacks every family of a group is said to lack (the hello's missing_fields).
GROUPS: Mapping[str, tuple[str, ...]] = {
    "ecc": tuple(k for k, (part, _) in PARTS.items() if part == "ecc"),
    "retired pages": tuple(k for k, (part, _) in PARTS.items() if part == "retired_pages"),
    "remapped rows": tuple(k for k, (part, _) in PARTS.items() if part == "remapped_rows"),
    "xid": (XID,),
    "throttle reasons": REASONS,
    "memory temperature": ("DCGM_FI_DEV_MEMORY_TEMP",),
}
HOST_LABELS = ("Hostname", "hostname")  # released dcgm-exporter, and its main branch
POD_LABELS = ("namespace", "pod", "container")
SOURCE = "prometheus"
GONE = "dcgm-exporter reports nothing of it but its last XID: lost to the driver"

# One GPU (or MIG instance) as a refresh found it: (host, gpu index, GPU instance id or None).
Key = tuple[str, int, int | None]


def host_of(labels: Mapping[str, str], host_label: str | None) -> str | None:
    if host_label is not None:
        return labels.get(host_label) or None
    return next((labels[name] for name in HOST_LABELS if labels.get(name)), None)


def number(text: object) -> float | None:
    """A Prometheus sample value ("12", "NaN", "+Inf") as a finite float, else None."""
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def key_of(labels: Mapping[str, str], host_label: str | None) -> Key | None:
    host = host_of(labels, host_label)
    try:
        gpu = int(labels.get("gpu", ""))
    except ValueError:
        return None
    if host is None or gpu < 0:
        return None
    gi = labels.get("GPU_I_ID")
    try:
        return host, gpu, int(gi) if gi not in (None, "") else None
    except ValueError:
        return None


@dataclass
class Reading:
    """One refresh's answers for the whole fleet."""

    values: dict[str, dict[Key, str]] = field(default_factory=dict)  # family -> key -> raw value
    inventory: dict[Key, dict[str, str]] = field(default_factory=dict)  # key -> every label of its FB_USED series
    scraped: dict[str, float] = field(default_factory=dict)  # host -> its latest scrape time (epoch s)
    xid_changed: set[tuple[str, int]] = field(default_factory=set)  # (host, gpu) whose XID gauge moved lately
    unlabelled: int = 0  # series with no host or gpu label: said once, not guessed
    exported: dict[str, set[str]] = field(default_factory=dict)  # family -> the hosts that export it

    @classmethod
    def of(
        cls,
        inventory: list[dict[str, Any]],
        scraped: list[dict[str, Any]],
        xids: list[dict[str, Any]],
        values: list[dict[str, Any]],
        host_label: str | None,
    ) -> Reading:
        """One refresh's four answers, read (in a thread: for 10,000 GPUs this is most of a refresh's work)."""
        reading = cls()
        reading.add_inventory(inventory, host_label)
        reading.add_scraped(scraped, host_label)
        reading.add_xid_changes(xids, host_label)
        reading.add_values(values, host_label)
        return reading

    def _keyed(self, result: Iterable[Mapping[str, Any]], host_label: str | None) -> Iterator[tuple[Key, dict[str, str], Any]]:
        """Each series with its GPU's key, labels and raw value; one without a host or GPU is counted, not guessed."""
        for series in result:
            labels = series.get("metric", {})
            key = key_of(labels, host_label)
            if key is None:
                self.unlabelled += 1
                continue
            yield key, labels, series["value"][1]

    def add_values(self, result: Iterable[Mapping[str, Any]], host_label: str | None) -> None:
        """Series of any family, told apart by ``__name__``."""
        for key, labels, value in self._keyed(result, host_label):
            family = labels.get("__name__", "")
            self.values.setdefault(family, {})[key] = value
            self.exported.setdefault(family, set()).add(key[0])

    def add_inventory(self, result: Iterable[Mapping[str, Any]], host_label: str | None) -> None:
        for key, labels, value in self._keyed(result, host_label):
            self.inventory[key] = labels
            self.values.setdefault(FB_USED, {})[key] = value

    def add_scraped(self, result: Iterable[Mapping[str, Any]], host_label: str | None) -> None:
        for series in result:
            host = host_of(series.get("metric", {}), host_label)
            t = number(series["value"][1])
            if host is not None and t is not None:
                self.scraped[host] = max(t, self.scraped.get(host, 0.0))

    def add_xid_changes(self, result: Iterable[Mapping[str, Any]], host_label: str | None) -> None:
        for series in result:
            key = key_of(series.get("metric", {}), host_label)
            if key is not None and (number(series["value"][1]) or 0) > 0:
                self.xid_changed.add((key[0], key[1]))

    def hosts(self) -> dict[str, list[Key]]:
        """Each host's GPUs (and MIG instances): those with readings, and those of a host with readings
        that have nothing left but their XID gauge (a GPU fallen off the bus keeps its last XID)."""
        by_host: dict[str, list[Key]] = {}
        for key in sorted(self.inventory, key=_order):
            by_host.setdefault(key[0], []).append(key)
        for key in sorted(self.values.get(XID, {}), key=_order):
            gpus = by_host.get(key[0])
            if gpus is not None and all(k[1] != key[1] for k in gpus):
                gpus.append(key)
        return by_host


def _order(key: Key) -> tuple[str, int, int]:
    return key[0], key[1], -1 if key[2] is None else key[2]


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


class HostFrames:
    """One host's frames from successive readings: what it knew last time decides what is new."""

    def __init__(self, host: str, interval_s: float) -> None:
        self.host = host
        self.interval_s = interval_s
        self.static: tuple[object, ...] | None = None
        self.gpus: list[int] = []
        self.scraped_at: float | None = None
        self.seq = 0
        self.xids: dict[int, float] = {}  # GPU -> the XID value already reported

    def frames(self, reading: Reading, keys: list[Key]) -> list[dict[str, Any]]:
        """The hello (if the GPUs changed) and the sample (if the host was scraped again) from ``reading``."""
        scraped = reading.scraped.get(self.host)
        if scraped is None or (self.scraped_at is not None and scraped <= self.scraped_at):
            return []
        if self.scraped_at is not None and scraped - self.scraped_at > 0:
            gap = scraped - self.scraped_at
            if not 0.75 * self.interval_s <= gap <= 1.5 * self.interval_s and self.seq >= 1:
                self.interval_s = gap
                self.static = None  # a new hello says the interval the host is really scraped at
        self.scraped_at = scraped
        out: list[dict[str, Any]] = []
        by_gpu: dict[int, list[Key]] = {}
        for key in keys:
            by_gpu.setdefault(key[1], []).append(key)
        hello = self._hello(reading, by_gpu, scraped)
        if hello is not None:
            out.append(hello)
        self.seq += 1
        out.append(self._sample(reading, by_gpu, scraped))
        return out

    # -- hello -------------------------------------------------------------------
    def _hello(self, reading: Reading, by_gpu: dict[int, list[Key]], t: float) -> dict[str, Any] | None:
        gpus = [self._static(reading, index, keys) for index, keys in sorted(by_gpu.items())]
        for index in self.gpus:  # a GPU gone from a host still scraped: lost, and said so
            if index not in by_gpu:
                gpus.append({"index": index, "lost": True, "error": "no longer reported by dcgm-exporter"})
        gpus.sort(key=lambda g: g["index"])
        labels = next((reading.inventory[k[0]] for k in by_gpu.values() if k[0] in reading.inventory), {})
        missing = sorted(name for name, families in GROUPS.items() if not self._exported(reading, families))
        static = (tuple(repr(g) for g in gpus), labels.get("DCGM_FI_DRIVER_VERSION"), tuple(missing), self.interval_s)
        if static == self.static:
            return None
        self.static = static
        self.gpus = sorted({g["index"] for g in gpus})
        return {
            "type": "hello", "v": PROTOCOL_VERSION, "t": t, "agent_version": "dcgm-exporter", "host": self.host,
            "source": SOURCE, "driver_version": labels.get("DCGM_FI_DRIVER_VERSION"), "interval_s": self.interval_s,
            "gpus": gpus, "missing_fields": missing,
        }  # fmt: skip

    def _exported(self, reading: Reading, families: tuple[str, ...]) -> bool:
        return any(self.host in reading.exported.get(family, ()) for family in families)

    def _static(self, reading: Reading, index: int, keys: list[Key]) -> dict[str, Any]:
        if keys[0] not in reading.inventory:
            return {"index": index, "lost": True, "error": GONE}
        labels = reading.inventory[keys[0]]
        name = labels.get("modelName")
        total = sum(self._fb_total(reading, key) or 0 for key in keys) or None
        gpu: dict[str, Any] = {
            "index": index, "uuid": labels.get("UUID"), "name": name, "pci_bus_id": labels.get("pci_bus_id"),
            "mem_total_mib": total,
        }  # fmt: skip
        slowdown = _int(self._value(reading, SLOWDOWN, keys[0]))
        shutdown = _int(self._value(reading, SHUTDOWN, keys[0]))
        model = model_limits(name)
        if slowdown is not None:
            gpu.update(temp_slowdown_c=slowdown, temp_shutdown_c=shutdown, temp_limits_from="dcgm-exporter")
        elif model is not None:
            gpu.update(temp_slowdown_c=model[1][0], temp_shutdown_c=model[1][1], temp_limits_from=f"{model[0]} default")
        mig = [k for k in keys if k[2] is not None]
        gpu["mig_enabled"] = bool(mig)
        if mig:
            gpu["mig_devices"] = [
                {"index": n, "gpu_instance_id": k[2], "profile": reading.inventory[k].get("GPU_I_PROFILE"),
                 "mem_total_mib": self._fb_total(reading, k)}
                for n, k in enumerate(mig)
            ]  # fmt: skip
        return gpu

    def _fb_total(self, reading: Reading, key: Key) -> int | None:
        used, free = self._value(reading, FB_USED, key), self._value(reading, FB_FREE, key)
        if used is None or free is None:
            return None
        return round(used + free + (self._value(reading, FB_RESERVED, key) or 0))

    @staticmethod
    def _value(reading: Reading, family: str, key: Key) -> float | None:
        raw = reading.values.get(family, {}).get(key)
        return None if raw is None else number(raw)

    # -- sample ------------------------------------------------------------------
    def _sample(self, reading: Reading, by_gpu: dict[int, list[Key]], t: float) -> dict[str, Any]:
        gpus: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for index in self.gpus:
            keys = by_gpu.get(index)
            if not keys:
                gpus.append({"index": index, "lost": True})
                continue
            gpus.append(self._gpu(reading, index, keys) if keys[0] in reading.inventory else {"index": index, "lost": True})
            event = self._xid(reading, index, keys[0])
            if event is not None:
                events.append(event)
        sample: dict[str, Any] = {"type": "sample", "v": PROTOCOL_VERSION, "t": t, "seq": self.seq, "gpus": gpus}
        if events:
            sample["events"] = events
        return sample

    def _gpu(self, reading: Reading, index: int, keys: list[Key]) -> dict[str, Any]:
        first = keys[0]
        gpu: dict[str, Any] = {"index": index}
        errors: dict[str, str] = {}

        def read(family: str, key: Key, where: str) -> float | None:
            raw = reading.values.get(family, {}).get(key)
            value = None if raw is None else number(raw)
            if raw is not None and value is None:
                errors[where] = f"dcgm-exporter gave {raw} for {family}"
            return value

        for family, name in VALUES.items():
            value = read(family, first, name)
            if value is not None:
                gpu[name] = value if name in ("power_w", "power_limit_w") else round(value)
        for family, (part, name) in PARTS.items():
            value = read(family, first, f"{part}.{name}")
            if value is not None:
                gpu.setdefault(part, {})[name] = bool(value) if family in BOOL_PARTS else round(value)
        used = [read(FB_USED, k, "mem_used_mib") for k in keys]
        if all(u is not None for u in used):
            gpu["mem_used_mib"] = round(sum(u for u in used if u is not None))
        totals = [self._fb_total(reading, k) for k in keys]
        if all(x is not None for x in totals):
            gpu["mem_total_mib"] = sum(x for x in totals if x is not None)
        mask = next((read(f, first, "throttle") for f in REASONS if first in reading.values.get(f, {})), None)
        if mask is not None:
            gpu["throttle"] = reasons_of(int(mask))
        if len(keys) > 1 or first[2] is not None:  # MIG: each instance's memory
            gpu["mig"] = [{"index": n, "mem_used_mib": _int(read(FB_USED, k, "mig"))} for n, k in enumerate(keys)]
            gpu.pop("util_pct", None)  # dcgm-exporter's GPU_UTIL is not the board's under MIG
        holder = self._holder(reading.inventory[first])
        if holder is not None:
            gpu["holder"] = holder
        if errors:
            gpu["field_errors"] = errors
        return gpu

    @staticmethod
    def _holder(labels: Mapping[str, str]) -> str | None:
        """The pod that holds the GPU, where dcgm-exporter's Kubernetes mapping says: namespace/pod/container."""
        parts = [labels.get(name) for name in POD_LABELS]
        if not parts[1]:
            return None
        return "/".join(p for p in parts if p)

    def _xid(self, reading: Reading, index: int, key: Key) -> dict[str, Any] | None:
        """An XID event when the gauge moved lately and holds a value not yet reported."""
        if (self.host, index) not in reading.xid_changed:
            self.xids.pop(index, None)  # quiet for the whole window: the same code later is a new XID
            return None
        raw = reading.values.get(XID, {}).get(key)
        value = None if raw is None else number(raw)
        code = _int(value)
        labels = reading.inventory.get(key, {})
        if not code:  # 0: "no error" (the gauge's start); a code is in err_code on newer exporters
            code = _int(number(labels.get("err_code", "")))
        if not code or self.xids.get(index) == code:
            return None
        self.xids[index] = code
        return {"xid": code, "gpu": index, "t": time.time(), "source": "nvml", "text": "last XID in dcgm-exporter's gauge"}
