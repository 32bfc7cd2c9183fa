"""Reads one GPU: static facts once, dynamic values every sample.

The budget is at most five NVML calls per GPU per sample. Four are spent
every sample (the batched field values, utilisation, memory, temperature);
the fifth is one "slot" shared by the values that change slowly or rarely
matter second by second (processes, their SM and memory-bandwidth shares,
clocks, P-state, fan, compute mode, persistence mode),
each given a refresh period, the most overdue going first. The process list
jumps the queue when memory use changes, since that is how a job arriving or
leaving shows first.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from gputui.agent.fields import NVLINK_FIELDS, THROTTLE_BITS, THROTTLE_COUNTERS, FieldBatch
from gputui.agent.mig import MigReader
from gputui.agent.nvml_calls import GpuLost, NvmlCaller, text

MIB = 1024 * 1024
MIN_RATE_INTERVAL_S = 0.2

# slot task -> refresh period in samples
SLOT_PERIODS = {
    "processes": 2,
    # NVML keeps the samples since the last ask: one call every few samples
    # gives each process's average over the whole time, not a glimpse.
    "process_util": 4,
    "throttle": 2,  # only on drivers without the throttle time counters
    "power_limit": 10,  # only on drivers without the power-limit field
    "sm_clock": 10,
    "mem_clock": 10,
    "pstate": 10,
    "fan": 10,
    "compute_mode": 30,
    "persistence_mode": 30,
    "mig": 2,  # only where a GPU in MIG mode answers utilisation (see gputui.agent.mig)
}

COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}

SAMPLE_KEYS = (
    "util_pct", "mem_util_pct", "mem_used_mib", "mem_total_mib", "temp_c", "mem_temp_c",
    "power_w", "power_limit_w", "sm_clock_mhz", "mem_clock_mhz", "fan_pct", "pstate",
    "throttle", "ecc", "retired_pages", "remapped_rows", "pcie_rx_kib_s", "pcie_tx_kib_s",
    "compute_mode", "processes",
)  # fmt: skip
# Added later: left out of a frame when unknown, to keep frames small.
OPTIONAL_KEYS = ("persistence_mode", "pcie_replays", "nvlink", "throttle_ms", "field_errors")


def _w(mw: Optional[float]) -> Optional[float]:
    return None if mw is None else round(mw / 1000.0, 1)


class GpuReader:
    """State kept between samples for one GPU index."""

    def __init__(self, caller: NvmlCaller, index: int) -> None:
        self.nvml = caller.nvml
        self.caller = caller
        self.index = index
        self.lost = False
        self.handle: Any = None
        self.batch = FieldBatch(self.nvml)
        self.static: Dict[str, Any] = {"index": index}
        self.slow: Dict[str, Any] = {}
        self.due: Dict[str, int] = {}
        self.counters: Dict[str, float] = {}
        self.counters_at: Optional[float] = None
        self.last_mem_used: Optional[float] = None
        self.nvml_processes: List[Any] = []
        self.process_util: Dict[int, Tuple[Optional[int], Optional[int]]] = {}  # pid -> (SM %, memory %)
        self.util_seen_us = 0  # the newest process-utilisation sample taken
        self.primed = False
        self.mem_v2: Any = getattr(caller.nvml, "nvmlMemory_v2", None)
        self.mig: Optional[MigReader] = None

    # -- static facts -------------------------------------------------------
    def read_static(self, now: float) -> Dict[str, Any]:
        q = self._query
        facts: Dict[str, Any] = {"index": self.index}
        try:
            self.handle = self.caller.call("nvmlDeviceGetHandleByIndex", self.index)
            facts["uuid"] = text(q("nvmlDeviceGetUUID"))
            facts["name"] = text(q("nvmlDeviceGetName"))
            facts["serial"] = text(q("nvmlDeviceGetSerial"))
            pci = q("nvmlDeviceGetPciInfo")
            facts["pci_bus_id"] = text(pci.busId) if pci is not None else None
            mem = q("nvmlDeviceGetMemoryInfo")
            facts["mem_total_mib"] = None if mem is None else int(mem.total // MIB)
            limits = q("nvmlDeviceGetPowerManagementLimitConstraints")
            facts["power_min_w"] = _w(limits[0]) if limits else None
            facts["power_max_w"] = _w(limits[1]) if limits else None
            facts["power_default_w"] = _w(q("nvmlDeviceGetPowerManagementDefaultLimit"))
            n = self.nvml
            facts["temp_slowdown_c"] = q("nvmlDeviceGetTemperatureThreshold", n.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)
            facts["temp_shutdown_c"] = q("nvmlDeviceGetTemperatureThreshold", n.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN)
            mig = q("nvmlDeviceGetMigMode")
            facts["mig_enabled"] = None if mig is None else bool(mig[0])
            if facts["mig_enabled"]:
                self.mig = MigReader(self.caller, self.index)
                facts["mig_devices"] = self.mig.read_layout(self.handle, facts["mem_total_mib"])
            facts["lost"] = False
            # Prime the cumulative counters so the first sample has rates.
            values = q("nvmlDeviceGetFieldValues", self.batch.ids())
            if values is not None:
                self.counters = {k: v for k, v in self.batch.read(values).items() if v is not None}
                self.counters_at = now
        except GpuLost:
            self.lost = True
            facts.update(dict.fromkeys(_STATIC_KEYS))
            facts["lost"] = True
        except self.nvml.NVMLError as exc:
            # No handle at all: the driver does not know this index any more.
            self.lost = True
            facts.update(dict.fromkeys(_STATIC_KEYS))
            facts["lost"] = True
            facts["error"] = "handle: nvml_error_%s" % getattr(exc, "value", "?")
        self.static = facts
        return facts

    def _query(self, name: str, *args: Any) -> Any:
        return self.caller.query(self.index, name, self.handle, *args)

    # -- dynamic values -----------------------------------------------------
    def _blank(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"index": self.index}
        out.update(dict.fromkeys(SAMPLE_KEYS))
        out.update(mem_total_mib=self.static.get("mem_total_mib"), processes=[], lost=True)
        return out

    def sample(self, seq: int, now: float, describe: Callable[[int, float], Any]) -> Dict[str, Any]:
        """One GPU's sample; ``describe(pid, now)`` adds /proc facts to a pid."""
        if self.lost:
            return self._blank()
        out = self._blank()
        self.caller.transient.pop(self.index, None)
        try:
            self._fill(out, seq, now)
        except GpuLost:
            self.lost = True
            return self._blank()
        out["processes"] = self._processes(now, describe)
        if self.mig is not None:
            out["mig"] = self.mig.sample({p["pid"] for p in out["processes"]})
        out["lost"] = False
        errors = dict(self.batch.errors)
        errors.update(self.caller.transient.pop(self.index, {}))
        out["field_errors"] = errors or None
        for key in OPTIONAL_KEYS:
            if out.get(key, 0) is None:
                del out[key]
        return out

    def _fill(self, out: Dict[str, Any], seq: int, now: float) -> None:
        n = self.nvml
        q = self._query
        values = self.caller.query(self.index, "nvmlDeviceGetFieldValues", self.handle, self.batch.ids())
        f = self.batch.read(values) if values is not None else {}
        util = q("nvmlDeviceGetUtilizationRates")
        if util is not None:
            out["util_pct"] = int(util.gpu)
            out["mem_util_pct"] = int(util.memory)
        mem = self._memory()
        if mem is not None:
            out["mem_used_mib"] = int(mem.used // MIB)
            out["mem_total_mib"] = int(mem.total // MIB)
        out["temp_c"] = q("nvmlDeviceGetTemperature", n.NVML_TEMPERATURE_GPU)
        out["mem_temp_c"] = _int(f.get("mem_temp_c"))
        slot_turn = self._power(out, f, seq)
        # Old drivers answer the power-cap counter but not the thermal ones:
        # only with the thermal counters do counters tell the whole story.
        counters_give_throttle = self.batch.has("thr_hw_thermal") and self.batch.has("thr_sw_thermal")
        first = not self.primed
        if first:
            # The first sample is complete: every slot task runs once, and
            # throttle reasons come from the bitmask since no interval exists.
            for task in _PRIORITY:
                if task != "mig":
                    self._run_task(task, seq)
            if counters_give_throttle:
                del self.due["throttle"]
            if self.batch.has("power_limit_mw"):
                del self.due["power_limit"]
            self.primed = True
        else:
            if not counters_give_throttle:
                self.due.setdefault("throttle", seq)
            if not self.batch.has("power_limit_mw"):
                self.due.setdefault("power_limit", seq)
            if slot_turn:
                self._run_slot(seq)
        self._mig_use(seq, first)
        out.update(self.slow)
        self._derive(out, f, now)
        if counters_give_throttle and self.counters_at is not None:
            self.slow.pop("throttle", None)
        if f.get("power_limit_mw") is not None:
            out["power_limit_w"] = _w(f["power_limit_mw"])
        if out["mem_used_mib"] != self.last_mem_used:
            self.due["processes"] = seq + 1  # memory moved: a job came or went
        if not self.nvml_processes:
            self.due.pop("process_util", None)  # nothing runs: nothing to share out
            self.process_util = {}
        elif "process_util" not in self.due:
            self.due["process_util"] = seq + 1
        self.last_mem_used = out["mem_used_mib"]

    def _mig_use(self, seq: int, first: bool) -> None:
        """MIG instances' memory and processes: all of them in the first
        sample, then one call a sample in the place of the utilisation NVML
        does not give in MIG mode. Should a driver give it, the instances
        take turns in the slot instead, so the budget holds either way."""
        if self.mig is None:
            return
        if first:
            self.mig.read_all()
        elif self.caller.unavailable(self.index, "nvmlDeviceGetUtilizationRates"):
            self.mig.turn()
        else:
            self.due.setdefault("mig", seq + 1)

    def _slot_mig(self) -> None:
        if self.mig is not None:
            self.mig.turn()

    def _power(self, out: Dict[str, Any], f: Dict[str, Optional[float]], seq: int) -> bool:
        """Power from the batch; without the batched field (drivers 535 and
        older) it costs a call of its own, which takes turns with the slot so
        that a sample still costs five calls: power is then read every other
        sample. True when this sample's turn is the slot's."""
        by_call = not self.batch.has("power_mw") and not self.caller.unavailable(self.index, "nvmlDeviceGetPowerUsage")
        slot_turn = not by_call or seq % 2 == 1
        if f.get("power_mw") is not None:
            out["power_w"] = _w(f["power_mw"])
        elif by_call and (not slot_turn or not self.primed):
            self.slow["power_w"] = _w(self._query("nvmlDeviceGetPowerUsage"))
        return slot_turn

    def _derive(self, out: Dict[str, Any], f: Dict[str, Optional[float]], now: float) -> None:
        """ECC, remaps, PCIe rates and throttle reasons from the field batch."""
        if any(f.get(k) is not None for k in ("ecc_vol_sbe", "ecc_vol_dbe", "ecc_agg_sbe", "ecc_agg_dbe")):
            out["ecc"] = {
                "volatile_corrected": _int(f.get("ecc_vol_sbe")),
                "volatile_uncorrected": _int(f.get("ecc_vol_dbe")),
                "aggregate_corrected": _int(f.get("ecc_agg_sbe")),
                "aggregate_uncorrected": _int(f.get("ecc_agg_dbe")),
            }
        if f.get("retired_sbe") is not None or f.get("retired_dbe") is not None:
            out["retired_pages"] = {
                "single_bit": _int(f.get("retired_sbe")),
                "double_bit": _int(f.get("retired_dbe")),
                "pending": _flag(f.get("retired_pending")),
            }
        if f.get("remap_cor") is not None or f.get("remap_unc") is not None:
            out["remapped_rows"] = {
                "correctable": _int(f.get("remap_cor")),
                "uncorrectable": _int(f.get("remap_unc")),
                "pending": _flag(f.get("remap_pending")),
                "failure": _flag(f.get("remap_failure")),
            }
        out["pcie_replays"] = _int(f.get("pcie_replays"))
        if any(f.get(k) is not None for k, _ in NVLINK_FIELDS):
            out["nvlink"] = {key: _int(f.get(k)) for k, key in NVLINK_FIELDS}
        prev, prev_at = self.counters, self.counters_at
        self.counters = {k: v for k, v in f.items() if v is not None}
        self.counters_at = now
        if prev_at is None or now - prev_at < MIN_RATE_INTERVAL_S:
            return  # too short an interval to give an honest rate
        dt = now - prev_at
        for key, out_key in (("pcie_tx_bytes", "pcie_tx_kib_s"), ("pcie_rx_bytes", "pcie_rx_kib_s")):
            if key in prev and key in self.counters:
                out[out_key] = round(max(0.0, self.counters[key] - prev[key]) / 1024.0 / dt, 1)
        moved = [k for k in THROTTLE_COUNTERS if k in prev and k in self.counters]
        if moved and "throttle" not in self.slow:
            out["throttle"] = sorted(THROTTLE_COUNTERS[k] for k in moved if self.counters[k] > prev[k])
        # The counters are in ns; only reasons that were active are sent (the
        # "throttle" list, [] or null, says whether nothing or unknown).
        spent = {THROTTLE_COUNTERS[k]: round((self.counters[k] - prev[k]) / 1e6, 1) for k in moved}
        out["throttle_ms"] = {k: v for k, v in spent.items() if v > 0} or None

    def _memory(self) -> Any:
        """Memory info, v2 where the driver has it: its "used" leaves out the
        driver's reservation, as nvidia-smi does; v1 counts it as used."""
        if self.mem_v2 is not None:
            try:
                return self.caller.call("nvmlDeviceGetMemoryInfo", self.handle, self.mem_v2)
            except self.nvml.NVMLError as exc:
                if getattr(exc, "value", None) == self.nvml.NVML_ERROR_GPU_IS_LOST:
                    raise GpuLost() from exc
                self.mem_v2 = None  # not on this driver: v1 from now on
            except TypeError:
                self.mem_v2 = None  # a binding without the version argument
        return self._query("nvmlDeviceGetMemoryInfo")

    def refresh_soon(self, task: str, seq: int) -> None:
        """Give ``task`` the slot at sample ``seq``, ahead of any other task due
        then (a change is known to have happened, and the operator is looking)."""
        if task in self.due:
            self.due[task] = min(self.due[task], seq - max(SLOT_PERIODS.values()))

    def _run_slot(self, seq: int) -> None:
        candidates = [(due, _PRIORITY[t], t) for t, due in self.due.items() if due <= seq]
        if candidates:
            self._run_task(min(candidates)[2], seq)

    def _run_task(self, task: str, seq: int) -> None:
        self.due[task] = seq + SLOT_PERIODS[task]
        getattr(self, "_slot_" + task)()

    def _slot_processes(self) -> None:
        procs = self._query("nvmlDeviceGetComputeRunningProcesses")
        if procs is None and self.caller.unavailable(self.index, "nvmlDeviceGetComputeRunningProcesses"):
            # Drivers without the v3 call (about 470 and older) still have v2.
            procs = self._query("nvmlDeviceGetComputeRunningProcesses_v2")
        self.nvml_processes = list(procs) if procs is not None else []

    def _slot_process_util(self) -> None:
        """Each process's share of the SM and of memory bandwidth, averaged
        over NVML's samples since the last call. No sample since then (NVML's
        NOT_FOUND) means no kernel ran: 0."""
        samples = self.caller.query(
            self.index, "nvmlDeviceGetProcessUtilization", self.handle, self.util_seen_us, empty=PROCESS_UTIL_EMPTY
        )
        if samples is None:
            self.process_util = {}
            return
        by_pid: Dict[int, List[Any]] = {}
        for s in samples:
            if int(s.timeStamp) > self.util_seen_us or not self.util_seen_us:
                by_pid.setdefault(int(s.pid), []).append(s)
        self.util_seen_us = max([self.util_seen_us, *(int(s.timeStamp) for s in samples)])
        self.process_util = {
            pid: (_mean_pct([s.smUtil for s in got]), _mean_pct([s.memUtil for s in got])) for pid, got in by_pid.items()
        }
        for p in self.nvml_processes:
            self.process_util.setdefault(int(p.pid), (0, 0))

    def _slot_throttle(self) -> None:
        mask = self._query("nvmlDeviceGetCurrentClocksEventReasons")
        if mask is None:
            self.slow["throttle"] = None
            return
        names = []
        for const, name in THROTTLE_BITS:
            bit = getattr(self.nvml, const, 0)
            if bit and mask & bit:
                names.append(name)
        self.slow["throttle"] = sorted(names)

    def _slot_power_limit(self) -> None:
        self.slow["power_limit_w"] = _w(self._query("nvmlDeviceGetEnforcedPowerLimit"))

    def _slot_sm_clock(self) -> None:
        self.slow["sm_clock_mhz"] = self._query("nvmlDeviceGetClockInfo", self.nvml.NVML_CLOCK_SM)

    def _slot_mem_clock(self) -> None:
        self.slow["mem_clock_mhz"] = self._query("nvmlDeviceGetClockInfo", self.nvml.NVML_CLOCK_MEM)

    def _slot_pstate(self) -> None:
        p = self._query("nvmlDeviceGetPerformanceState")
        self.slow["pstate"] = None if p is None or p == 32 else "P%d" % p

    def _slot_fan(self) -> None:
        self.slow["fan_pct"] = self._query("nvmlDeviceGetFanSpeed")

    def _slot_compute_mode(self) -> None:
        mode = self._query("nvmlDeviceGetComputeMode")
        self.slow["compute_mode"] = None if mode is None else COMPUTE_MODES.get(mode, str(mode))

    def _slot_persistence_mode(self) -> None:
        mode = self._query("nvmlDeviceGetPersistenceMode")
        self.slow["persistence_mode"] = None if mode is None else bool(mode)

    def _processes(self, now: float, describe: Callable[[int, float], Any]) -> List[Dict[str, Any]]:
        """The GPU's processes; on a GPU in MIG mode also those only its
        instances list (NVML gives the whole GPU's list to privileged users only)."""
        out = []
        listed = list(self.nvml_processes)
        if self.mig is not None:
            pids = {int(p.pid) for p in listed}
            for p in self.mig.processes():
                if int(p.pid) not in pids:
                    pids.add(int(p.pid))
                    listed.append(p)
        for p in listed:
            facts = describe(int(p.pid), now)
            if facts is None:
                continue  # exited since NVML listed it
            used = getattr(p, "usedGpuMemory", None)
            entry = dict(facts)
            entry["gpu_mem_mib"] = None if used is None else int(used // MIB)
            shares = self.process_util.get(int(p.pid))
            if shares is not None:  # unknown: left out, to keep frames small
                entry["sm_pct"], entry["mem_bw_pct"] = shares
            out.append(entry)
        return out


_STATIC_KEYS = (
    "uuid", "name", "serial", "pci_bus_id", "mem_total_mib", "power_min_w", "power_max_w",
    "power_default_w", "temp_slowdown_c", "temp_shutdown_c", "mig_enabled",
)  # fmt: skip

_PRIORITY = {
    "processes": 0,
    "process_util": 1,
    "throttle": 2,
    "power_limit": 3,
    "sm_clock": 4,
    "pstate": 5,
    "mem_clock": 6,
    "fan": 7,
    "compute_mode": 8,
    "persistence_mode": 9,
    "mig": 10,
}
# nvmlDeviceGetProcessUtilization's "no samples": NOT_FOUND, or (through
# pynvml's size probe) an NVMLError carrying SUCCESS when the count is 0.
PROCESS_UTIL_EMPTY = (6, 0)


def _mean_pct(values: List[Any]) -> Optional[int]:
    known = [int(v) for v in values if v is not None]
    return round(sum(known) / len(known)) if known else None


def _int(v: Optional[float]) -> Optional[int]:
    return None if v is None else int(v)


def _flag(v: Optional[float]) -> Optional[bool]:
    return None if v is None else bool(v)
