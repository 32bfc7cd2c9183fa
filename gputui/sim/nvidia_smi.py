"""A stand-in ``nvidia-smi`` for test hosts without python3 on their PATH.

It prints what the real tool prints for ``--query-gpu`` and
``--query-compute-apps`` with ``--format=csv,noheader,nounits`` (values
separated by ", ", "[N/A]" or "[Not Supported]" where there is none), from
the simulator. It is started through an absolute interpreter path, which is
how a host can have it while ``python3`` is not on the PATH.

As the real tool, it refuses the whole query when one field is not one it
knows (``Field "x" is not a valid field to query.`` on stdout, exit status
2). ``GPUTUI_SIM_SMI_UNKNOWN`` (a comma-separated list), or the file that
``GPUTUI_SIM_SMI_UNKNOWN_FILE`` names, lists fields to treat so: an older
nvidia-smi, which a test can put on a host without restarting its sshd.
"""

import os
import sys
import time
from typing import Any, Dict, List, Optional

from gputui.sim.nvml import SimNvml, clocks_event_mask

MIB = 1024 * 1024
PSTATES = {0: "P0", 8: "P8"}
# nvidia-smi's names for the clock-event (throttle) reasons and their NVML bits.
REASON_BITS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
}
# The old names, and the new ones (drivers 535 and later answer both).
REASON_PREFIXES = ("clocks_throttle_reasons.", "clocks_event_reasons.")
UNKNOWN_EXIT = 2


def _na(value: Any) -> str:
    return "[N/A]" if value is None else str(value)


def gpu_row(sim: SimNvml, index: int, fields: List[str]) -> str:
    g = sim.gpus[index]
    total = g.board.mem_total_mib
    values: Dict[str, Optional[object]] = {
        "index": index,
        "uuid": g.uuid,
        "name": g.board.name,
        "pci.bus_id": "00000000:%02X:00.0" % (0x18 + index),
        "driver_version": sim.scenario.driver.version,
        "memory.total": total,
        "memory.used": g.mem_used_mib,
        "utilization.gpu": None if g.mig else round(g.util),
        "utilization.memory": None if g.mig else round(g.mem_util),
        "temperature.gpu": round(g.temp_c),
        "power.draw": "%.2f" % g.power_w,
        "power.limit": "%.2f" % g.power_limit_w,
        "clocks.sm": g.sm_clock_mhz,
        "clocks.mem": g.board.mem_mhz,
        "fan.speed": g.fan_pct if g.board.has_fan else "[Not Supported]",
        "pstate": PSTATES.get(g.pstate, "P%d" % g.pstate),
        "compute_mode": "Default",
        "ecc.errors.uncorrected.volatile.total": g.ecc_vol_dbe,
        # The margin to the slowdown point, as drivers with T.Limit report it.
        "temperature.gpu.tlimit": g.board.slowdown_c - round(g.temp_c) if g.board.has_tlimit else None,
        "temperature.memory": g.mem_temp_c if g.board.has_mem_temp else None,
    }
    mask = clocks_event_mask(g)
    for prefix in REASON_PREFIXES:
        values[prefix + "active"] = "0x%016x" % mask
        for name, bit in REASON_BITS.items():
            values[prefix + name] = "Active" if mask & bit else "Not Active"
    return ", ".join(_na(values.get(f)) for f in fields)


def known_gpu_fields() -> List[str]:
    """The ``--query-gpu`` fields this stand-in answers, less those it is told it predates."""
    sim_fields = [
        "index", "uuid", "name", "pci.bus_id", "driver_version", "memory.total", "memory.used",
        "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "power.limit",
        "clocks.sm", "clocks.mem", "fan.speed", "pstate", "compute_mode",
        "ecc.errors.uncorrected.volatile.total", "temperature.gpu.tlimit", "temperature.memory",
    ]  # fmt: skip
    for prefix in REASON_PREFIXES:
        sim_fields += [prefix + "active"] + [prefix + name for name in REASON_BITS]
    unknown = set(_unknown_fields())
    return [f for f in sim_fields if f not in unknown]


def _unknown_fields() -> List[str]:
    text = os.environ.get("GPUTUI_SIM_SMI_UNKNOWN", "")
    path = os.environ.get("GPUTUI_SIM_SMI_UNKNOWN_FILE")
    if path:
        try:
            with open(path) as f:
                text += "," + f.read()
        except FileNotFoundError:
            pass
    return [f.strip() for f in text.replace("\n", ",").split(",") if f.strip()]


def app_rows(sim: SimNvml, fields: List[str]) -> List[str]:
    rows = []
    for g in sim.gpus:
        if g.job is None or g.job.pid is None:
            continue
        values = {"gpu_uuid": g.uuid, "pid": g.job.pid, "used_memory": g.job.mem_mib}
        rows.append(", ".join(_na(values.get(f)) for f in fields))
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    opts: Dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if "=" in a:
            k, v = a.split("=", 1)
            opts[k] = v
        elif a in ("-lms", "-l") and i + 1 < len(args):
            opts[a] = args[i + 1]
            i += 1
        i += 1
    scenario = os.environ.get("GPUTUI_SIM_SCENARIO", "healthy")
    sim = SimNvml(scenario, seed=int(os.environ.get("GPUTUI_SIM_SEED", "0")), processes="synthetic")
    if "--query-compute-apps" in opts:
        for row in app_rows(sim, opts["--query-compute-apps"].split(",")):
            print(row)
        return 0
    fields = opts.get("--query-gpu", "index").split(",")
    known = known_gpu_fields()
    for f in fields:
        if f not in known:
            print('Field "%s" is not a valid field to query.\n' % f)
            return UNKNOWN_EXIT
    period = float(opts["-lms"]) / 1000.0 if "-lms" in opts else float(opts.get("-l", "0") or 0)
    try:
        while True:
            sim.advance(1)
            for index in range(len(sim.gpus)):
                print(gpu_row(sim, index, fields))
            sys.stdout.flush()
            if not period:
                return 0
            time.sleep(period)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())
