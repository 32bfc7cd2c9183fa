"""dcgm-exporter's metrics by name, and where each is read in the agent's frames.

The table :mod:`gputui.agent.exporter` formats: names, types and help as
dcgm-exporter declares them (its ``etc/default-counters.csv`` and
``dcp-metrics-included.csv``), plus a few DCGM fields it exports when asked
(marked below), each with the getter that reads the value from a GPU's
hello facts and sample (None: no series). Also the names dcgm-exporter
gives XIDs in its ``err_msg`` label.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, NamedTuple, Tuple

# What `promtool check metrics` lints in these names, kept as dcgm-exporter gives them (its labels
# are camelCase, its counters lack "_total"): a dashboard built for dcgm-exporter reads them unchanged.
# Any other lint finding is a fault of ours (tests/test_exporter.py, bench/gpu_machine_report.py).
PROMTOOL_NAMING_LINTS = (
    "label names should be written in 'snake_case' not 'camelCase'",
    'counter metrics should have "_total" suffix',
    "metric name should not include type 'counter'",
)

# A metric's value for one GPU: (the hello's facts of the GPU, its sample) -> number or None.
Getter = Callable[[Dict[str, Any], Dict[str, Any]], Any]


class Metric(NamedTuple):
    name: str
    kind: str  # "gauge" or "counter", as dcgm-exporter declares it
    help: str
    get: Getter
    double: bool = False  # DCGM's double fields print as "%f", as dcgm-exporter prints them


def _key(name: str) -> Getter:
    return lambda static, gpu: gpu.get(name)


def _static(name: str) -> Getter:
    return lambda static, gpu: static.get(name)


def _sub(group: str, name: str) -> Getter:
    def get(static: Dict[str, Any], gpu: Dict[str, Any]) -> Any:
        values = gpu.get(group)
        return values.get(name) if isinstance(values, dict) else None

    return get


def _fb_free(static: Dict[str, Any], gpu: Dict[str, Any]) -> Any:
    # The frame has used and total, not NVML's "free" (which also leaves out
    # the driver's reservation): total - used counts that reservation as free.
    used, total = gpu.get("mem_used_mib"), gpu.get("mem_total_mib")
    return None if used is None or total is None else max(0, total - used)


def _kib_to_bytes(name: str) -> Getter:
    def get(static: Dict[str, Any], gpu: Dict[str, Any]) -> Any:
        value = gpu.get(name)
        return None if value is None else value * 1024.0

    return get


def _pstate(static: Dict[str, Any], gpu: Dict[str, Any]) -> Any:
    p = gpu.get("pstate")
    return int(p[1:]) if isinstance(p, str) and re.fullmatch(r"P[0-9]{1,2}", p) else None


COMPUTE_MODES = {"default": 0, "exclusive_thread": 1, "prohibited": 2, "exclusive_process": 3}


def _compute_mode(static: Dict[str, Any], gpu: Dict[str, Any]) -> Any:
    return COMPUTE_MODES.get(gpu.get("compute_mode") or "")


# DCGM_CLOCKS_EVENT_REASON_* bits (dcgm_fields.h; NVML's nvmlClocksEventReason*
# have the same values) for the agent's throttle reason names. The agent never
# reports gpu_idle (0x1) or the application-clocks setting (0x2), which are no
# problem, nor display clocks (0x100): those bits are never set here.
CLOCK_EVENT_BITS = {
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake": 0x80,
}


def _clock_events(static: Dict[str, Any], gpu: Dict[str, Any]) -> Any:
    reasons = gpu.get("throttle")
    if reasons is None:
        return None  # unknown, not "none"
    mask = 0
    for reason in reasons:
        mask |= CLOCK_EVENT_BITS.get(reason, 0)
    return mask


# In dcgm-exporter's order where its CSVs list the field; names, types and
# help are its own (etc/default-counters.csv; the ones it ships commented out
# too, since an operator enables them with the same names). The ones marked
# "DCGM field" are not in its CSVs but are DCGM fields it exports under that
# name when a counters file lists them; their help is ours.
METRICS: Tuple[Metric, ...] = (
    Metric("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", _key("sm_clock_mhz")),
    Metric("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", _key("mem_clock_mhz")),
    Metric("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", _key("mem_temp_c")),
    Metric("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", _key("temp_c")),
    # DCGM fields: the board's thresholds, from the hello.
    Metric("DCGM_FI_DEV_SLOWDOWN_TEMP", "gauge", "Slowdown temperature (in C).", _static("temp_slowdown_c")),
    Metric("DCGM_FI_DEV_SHUTDOWN_TEMP", "gauge", "Shutdown temperature (in C).", _static("temp_shutdown_c")),
    Metric("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", _key("power_w"), double=True),
    # DCGM fields: the limit the driver enforces now, and the configurable range.
    Metric(
        "DCGM_FI_DEV_ENFORCED_POWER_LIMIT",
        "gauge",
        "Power limit the driver enforces, after all limiters (in W).",
        _key("power_limit_w"),
        double=True,
    ),
    Metric("DCGM_FI_DEV_POWER_MGMT_LIMIT_MIN", "gauge", "Minimum power management limit (in W).", _static("power_min_w"), True),
    Metric("DCGM_FI_DEV_POWER_MGMT_LIMIT_MAX", "gauge", "Maximum power management limit (in W).", _static("power_max_w"), True),
    Metric(
        "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "gauge", "Default power management limit (in W).", _static("power_default_w"), True
    ),
    Metric("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", _key("pcie_replays")),
    # dcp-metrics-included.csv's PCIe rates. dcgm-exporter reads them from DCGM
    # profiling; here they are NVML's PCIe byte counters over the sample interval.
    Metric(
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gauge",
        "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - "
        "in bytes per second.",
        _kib_to_bytes("pcie_tx_kib_s"),
        double=True,
    ),
    Metric(
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gauge",
        "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        _kib_to_bytes("pcie_rx_kib_s"),
        double=True,
    ),
    Metric("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", _key("util_pct")),
    Metric("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", _key("mem_util_pct")),
    # XID: filled from the events, not from a getter (see metrics_text).
    Metric("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", lambda static, gpu: None),
    # DCGM field, the bitmask (DCGM 3.3 renamed DCGM_FI_DEV_CLOCK_THROTTLE_REASONS to this).
    Metric(
        "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
        "gauge",
        "Current clock event (throttle) reasons, a bitmask of DCGM_CLOCKS_EVENT_REASON_* values.",
        _clock_events,
    ),
    Metric("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", _fb_free),
    Metric("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", _key("mem_used_mib")),
    Metric("DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB).", _key("mem_total_mib")),  # DCGM field
    Metric(
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "counter",
        "Total number of single-bit volatile ECC errors.",
        _sub("ecc", "volatile_corrected"),
    ),
    Metric(
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "counter",
        "Total number of double-bit volatile ECC errors.",
        _sub("ecc", "volatile_uncorrected"),
    ),
    Metric(
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        "counter",
        "Total number of single-bit persistent ECC errors.",
        _sub("ecc", "aggregate_corrected"),
    ),
    Metric(
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "counter",
        "Total number of double-bit persistent ECC errors.",
        _sub("ecc", "aggregate_uncorrected"),
    ),
    Metric(
        "DCGM_FI_DEV_RETIRED_SBE",
        "counter",
        "Total number of retired pages due to single-bit errors.",
        _sub("retired_pages", "single_bit"),
    ),
    Metric(
        "DCGM_FI_DEV_RETIRED_DBE",
        "counter",
        "Total number of retired pages due to double-bit errors.",
        _sub("retired_pages", "double_bit"),
    ),
    Metric(
        "DCGM_FI_DEV_RETIRED_PENDING", "counter", "Total number of pages pending retirement.", _sub("retired_pages", "pending")
    ),
    Metric(
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        "counter",
        "Total number of NVLink flow-control CRC errors.",
        _sub("nvlink", "crc_flit"),
    ),
    Metric(
        "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
        "counter",
        "Total number of NVLink data CRC errors.",
        _sub("nvlink", "crc_data"),
    ),
    Metric("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink retries.", _sub("nvlink", "replay")),
    Metric(
        "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
        "counter",
        "Total number of NVLink recovery errors.",
        _sub("nvlink", "recovery"),
    ),
    Metric(
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for uncorrectable errors",
        _sub("remapped_rows", "uncorrectable"),
    ),
    Metric(
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for correctable errors",
        _sub("remapped_rows", "correctable"),
    ),
    Metric("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed", _sub("remapped_rows", "failure")),
    # DCGM fields: state the agent reads in its slow rotation.
    Metric(
        "DCGM_FI_DEV_ROW_REMAP_PENDING",
        "gauge",
        "Whether remapping of rows is pending (a GPU reset applies it).",
        _sub("remapped_rows", "pending"),
    ),
    Metric("DCGM_FI_DEV_FAN_SPEED", "gauge", "Fan speed (in %).", _key("fan_pct")),
    Metric("DCGM_FI_DEV_PSTATE", "gauge", "Performance state (P-state), 0 to 15.", _pstate),
    Metric("DCGM_FI_DEV_PERSISTENCE_MODE", "gauge", "Whether persistence mode is on.", _key("persistence_mode")),
    Metric(
        "DCGM_FI_DEV_COMPUTE_MODE",
        "gauge",
        "Compute mode: 0 default, 1 exclusive thread, 2 prohibited, 3 exclusive process.",
        _compute_mode,
    ),
)
XID_METRIC = "DCGM_FI_DEV_XID_ERRORS"

# err_msg of DCGM_FI_DEV_XID_ERRORS: the names NVIDIA's XID catalogue gives
# (as dcgm-exporter labels them) for the XIDs seen in practice; others are
# "Unknown Error", as dcgm-exporter says for a code it has no name for.
XID_NAMES = {
    0: "No Error",
    8: "GPU stopped processing",
    13: "Graphics Engine Exception",
    31: "GPU memory page fault",
    32: "Invalid or corrupted push buffer stream",
    38: "Driver firmware error",
    43: "GPU stopped processing",
    45: "Preemptive cleanup, due to previous errors -- Most likely to see when running multiple cuda",
    48: "Double Bit ECC Error",
    61: "Internal micro-controller breakpoint/warning",
    62: "Internal micro-controller halt",
    63: "ECC page retirement or row remapping recording event",
    64: "ECC page retirement or row remapper recording failure",
    68: "NVDEC0 Exception",
    69: "Graphics Engine class error",
    74: "NVLINK Error",
    79: "GPU has fallen off the bus",
    92: "High single-bit ECC error rate",
    94: "Contained ECC error",
    95: "Uncontained ECC error",
    109: "Context Switch Timeout Error",
    119: "GSP RPC Timeout",
    120: "GSP Error",
    121: "C2C Link Error",
    140: "Unrecovered ECC Error",
}
UNKNOWN_XID = "Unknown Error"
