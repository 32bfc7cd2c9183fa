"""``SimNvml``: pynvml's interface over simulated GPUs.

Constants, structures and exception classes are pynvml's own (the module
loads without the driver; only its functions need ``libnvidia-ml``), so code
that catches ``pynvml.NVMLError_NotSupported`` catches the simulator's too.
Every function the agent calls is here under its pynvml name and signature.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import pynvml

from gputui.sim.driver import DriverState
from gputui.sim.events import EventApi, SimXids
from gputui.sim.gpu import MIB, SimGpu, pci_bus
from gputui.sim.processes import AttachedProcesses, StandInProcesses, SyntheticProcesses
from gputui.sim.scenarios import SCENARIOS, Scenario, roles_for

WARMUP_STEPS = 30
Pool = Union[StandInProcesses, SyntheticProcesses, AttachedProcesses]
MAX_CATCH_UP_STEPS = 3600


class FieldValue:
    """What ``c_nvmlFieldValue_t`` offers (fieldId, nvmlReturn, valueType,
    timestamp, latencyUsec, value.<member>), as a plain object: building
    ctypes structures was most of the simulator's cost at a thousand hosts."""

    __slots__ = ("fieldId", "latencyUsec", "nvmlReturn", "scopeId", "timestamp", "value", "valueType")

    def __init__(self, field_id: int, status: int, value_type: int, number: Optional[int], stamp: int) -> None:
        self.fieldId = field_id
        self.scopeId = 0
        self.nvmlReturn = status
        self.valueType = value_type
        self.timestamp = stamp
        self.latencyUsec = 0
        self.value = FieldUnion(value_type, number)


class FieldUnion:
    """The ``c_nvmlValue_t`` union: every member reads the same number."""

    __slots__ = ("dVal", "siVal", "sllVal", "uiVal", "ulVal", "ullVal", "usVal")

    def __init__(self, value_type: int, number: Optional[int]) -> None:
        n = 0 if number is None else number
        self.uiVal = self.ulVal = self.ullVal = self.sllVal = self.siVal = self.usVal = n
        self.dVal = float(n)


class SimHandle:
    """Equal for the same GPU, as NVML's handles are (an event's handle is
    compared with the one the agent got by index)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimHandle) and other.index == self.index

    def __hash__(self) -> int:
        return hash(("SimHandle", self.index))


class SimMigHandle:
    """A MIG device's handle: its GPU and its MIG device index."""

    __slots__ = ("index", "mig")

    def __init__(self, index: int, mig: int) -> None:
        self.index = index
        self.mig = mig

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimMigHandle) and (other.index, other.mig) == (self.index, self.mig)

    def __hash__(self) -> int:
        return hash(("SimMigHandle", self.index, self.mig))


MAX_MIG_DEVICES = 7  # what A100 and H100 answer to nvmlDeviceGetMaxMigDeviceCount


def clocks_event_mask(g: SimGpu) -> int:
    """The clock-event reasons bitmask; the stand-in nvidia-smi prints the same
    one, so that the agent and the nvidia-smi fallback see one GPU alike."""
    mask = 0 if g.job is not None else pynvml.nvmlClocksEventReasonGpuIdle
    if g.throttling:
        mask |= pynvml.nvmlClocksEventReasonSwThermalSlowdown | pynvml.nvmlClocksEventReasonHwThermalSlowdown
    if g.power_w >= g.power_limit_w * 0.98:
        mask |= pynvml.nvmlClocksEventReasonSwPowerCap
    return mask


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class SimNvml(EventApi):
    """Simulated NVML for one host. Not thread-safe, like the agent's sampling,
    except the event API (:mod:`gputui.sim.events`), which the agent waits on
    from a thread of its own. ``calls`` counts the other calls: the sampling
    budget is about those."""

    def __init__(
        self,
        scenario: str,
        seed: int = 0,
        gpus: Optional[int] = None,
        processes: str = "standin",
        clock: Callable[[], float] = time.monotonic,
        host_no: int = 0,
        state_dir: Optional[str] = None,
        host: str = "sim",
        kernel_log: bool = True,
    ) -> None:
        """``state_dir`` shares the driver state with other processes of the
        same simulated ``host`` (see :mod:`gputui.sim.driver`); with
        ``kernel_log`` false the XIDs are not kept there for agents started
        later (a host every run starts afresh); ``processes``
        is ``standin``, ``synthetic`` or ``attach`` (no processes of its own:
        it lists those the host's streaming agent wrote to the driver state)."""
        if scenario not in SCENARIOS:
            raise ValueError("unknown scenario %r (known: %s)" % (scenario, ", ".join(sorted(SCENARIOS))))
        self.scenario: Scenario = SCENARIOS[scenario]
        count = self.scenario.default_gpus if gpus is None else gpus
        if count < 1 or count > 64:
            raise ValueError("gpus must be between 1 and 64, not %d" % count)
        self.clock = clock
        self.calls = 0
        self.initialised = False
        rng = random.Random("%s/%d/%d" % (scenario, seed, host_no))
        roles = roles_for(self.scenario, count)
        boards = self.scenario.boards
        self.gpus: List[SimGpu] = []
        for i in range(count):
            uuid = "GPU-%08x-%04x-%04x-%04x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48))
            serial = "%013d" % rng.randrange(10**12, 10**13)
            gpu_seed = rng.getrandbits(32)
            board, role = boards[i % len(boards)], roles.get(i, "normal")
            layout = self.scenario.mig_layout
            self.gpus.append(SimGpu(i, board, role, gpu_seed, self.scenario.busy_fraction, uuid, serial, layout))
        self.missing = {getattr(pynvml, n) for n in self.scenario.driver.missing_fields if hasattr(pynvml, n)}
        self.driver = DriverState(state_dir, host) if state_dir else None
        shared = (state_dir, host) if state_dir and kernel_log else None
        self.xids = SimXids(roles, self.scenario.driver.version, host, clock, shared)
        self.persistence = int(self.scenario.persistence)
        self.failing: Dict[Any, int] = {}
        self.attached = processes == "attach"
        self.describe_process: Any = None
        self.pool = self._make_pool(processes, seed, host_no)
        self._written: Any = None
        for _ in range(WARMUP_STEPS):
            for g in self.gpus:
                g.step()
                g.finished.clear()
        self.t0 = clock()
        self.steps = 0
        self._read_modes()
        self._materialise()

    def _make_pool(self, processes: str, seed: int, host_no: int) -> Pool:
        if processes == "synthetic":
            pool = SyntheticProcesses(seed, host_no)
            self.describe_process = pool.describe
            return pool
        if processes == "standin":
            return StandInProcesses()
        if processes == "attach":
            if self.driver is None:
                raise ValueError("processes='attach' needs a state_dir to attach to")
            return AttachedProcesses()
        raise ValueError("processes must be 'standin', 'synthetic' or 'attach'")

    # -- pynvml's constants, structures and errors ----------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith(("NVML", "c_nvml", "nvmlClocks", "nvmlEventType", "nvmlFriendlyObject", "nvmlMemory")):
            return getattr(pynvml, name)
        raise AttributeError(name)

    # -- simulation -----------------------------------------------------------
    def advance(self, steps: int) -> None:
        """Move simulated time on by whole seconds (tests use this directly)."""
        self._read_modes()
        for _ in range(steps):
            for g in self.gpus:
                g.step()
        self.steps += steps
        self._materialise()

    def _sync(self) -> None:
        due = int(self.clock() - self.t0) - self.steps
        if due > 0:
            self.advance(min(due, MAX_CATCH_UP_STEPS))
            self.steps += max(0, due - MAX_CATCH_UP_STEPS)

    def _read_modes(self) -> None:
        """Compute modes set by another process (an ``--act`` agent) take effect here."""
        if self.driver is not None:
            for g in self.gpus:
                g.compute_mode = self.driver.compute_mode(g.uuid)

    def _materialise(self) -> None:
        """Give each running job a process, end those of finished jobs, and
        end jobs whose process was killed from outside."""
        if self.attached:
            return
        for g in self.gpus:
            for done in g.finished:
                if done.pid is not None:
                    self.pool.stop(done.pid)
            g.finished.clear()
            job = g.job
            if job is None or g.lost:
                continue
            if job.pid is None:
                # Every stand-in on GPU 1 ignores SIGTERM, so that a kill that
                # needs SIGKILL can be shown (see docs/actions.md).
                age = g.found_running_s(job)
                job.pid = self.pool.start(g.index * 7 + job.job_no, ignore_term=g.index == 1, age_s=age)
            elif not self.pool.alive(job.pid):
                self.pool.stop(job.pid)  # reap it and forget it
                job.pid = None
                g.end_job()
                g.finished.clear()
        self._publish()

    def _publish(self) -> None:
        """Write the processes on each GPU to the driver state when they change."""
        if self.driver is None:
            return
        procs = {g.uuid: [self._published(g)] for g in self.gpus if g.job is not None and g.job.pid is not None and not g.lost}
        if procs != self._written:
            self.driver.set_processes(procs)
            self._written = procs

    @staticmethod
    def _published(g: SimGpu) -> Dict[str, int]:
        """A job as the driver state lists it; on a MIG GPU, with its instance."""
        assert g.job is not None and g.job.pid is not None
        entry = {"pid": g.job.pid, "mem_mib": g.job.mem_mib}
        k = g.job_instance()
        if k is not None:
            entry["mig"] = k
        return entry

    def close(self) -> None:
        self.pool.close()
        if self.driver is not None and not self.attached:
            self.driver.set_processes({})

    def _gpu(self, handle: Union[SimHandle, SimMigHandle]) -> SimGpu:
        """The GPU of a whole-GPU handle; a MIG device answers NOT_SUPPORTED
        here, as it does for most queries (clocks, power, temperature...)."""
        gpu = self._any(handle)
        if isinstance(handle, SimMigHandle):
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def _any(self, handle: Union[SimHandle, SimMigHandle]) -> SimGpu:
        self.calls += 1
        if not self.initialised:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
        self._sync()
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def _mig(self, handle: Union[SimHandle, SimMigHandle]) -> SimGpu:
        """The GPU of a MIG device handle; INVALID_ARGUMENT for a whole GPU's."""
        gpu = self._any(handle)
        if not isinstance(handle, SimMigHandle):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu

    # -- system ---------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.calls += 1
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.calls += 1
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self.calls += 1
        return self.scenario.driver.version

    def nvmlSystemGetNVMLVersion(self) -> str:
        self.calls += 1
        return self.scenario.driver.nvml_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self.calls += 1
        return self.scenario.driver.cuda

    def nvmlDeviceGetCount(self) -> int:
        self.calls += 1
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimHandle:
        self.calls += 1
        if not 0 <= index < len(self.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return SimHandle(index)

    # -- static facts -----------------------------------------------------------
    def nvmlDeviceGetUUID(self, handle: Union[SimHandle, SimMigHandle]) -> str:
        g = self._any(handle)
        return g.mig_uuids[handle.mig] if isinstance(handle, SimMigHandle) else g.uuid

    def nvmlDeviceGetName(self, handle: SimHandle) -> str:
        return self._gpu(handle).board.name

    def nvmlDeviceGetSerial(self, handle: SimHandle) -> str:
        return self._gpu(handle).serial

    def nvmlDeviceGetPciInfo(self, handle: SimHandle) -> Any:
        gpu = self._gpu(handle)
        info = pynvml.nvmlPciInfo_t()
        bus = pci_bus(gpu.index)
        info.bus = bus
        info.busId = ("00000000:%02X:00.0" % bus).encode()
        return info

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: SimHandle) -> List[int]:
        b = self._gpu(handle).board
        return [int(b.min_limit_w * 1000), int(b.tdp_w * 1000)]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: SimHandle) -> int:
        return int(self._gpu(handle).board.tdp_w * 1000)

    def nvmlDeviceGetTemperatureThreshold(self, handle: SimHandle, threshold: int) -> int:
        b = self._gpu(handle).board
        if threshold == pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
            return b.slowdown_c
        if threshold == pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
            return b.shutdown_c
        raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetMigMode(self, handle: SimHandle) -> List[int]:
        mig = int(self._gpu(handle).mig)
        return [mig, mig]

    # -- MIG devices ------------------------------------------------------------
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: SimHandle) -> int:
        self._gpu(handle)
        return MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: SimHandle, index: int) -> SimMigHandle:
        """NOT_FOUND for an index that holds no instance, as the driver says it."""
        g = self._gpu(handle)
        if not 0 <= index < MAX_MIG_DEVICES:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(g.mig_layout):
            raise _error(pynvml.NVML_ERROR_NOT_FOUND)
        return SimMigHandle(handle.index, index)

    def nvmlDeviceIsMigDeviceHandle(self, handle: Union[SimHandle, SimMigHandle]) -> int:
        self._any(handle)
        return int(isinstance(handle, SimMigHandle))

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: SimMigHandle) -> SimHandle:
        self._mig(handle)
        return SimHandle(handle.index)

    def nvmlDeviceGetGpuInstanceId(self, handle: SimMigHandle) -> int:
        return self._mig(handle).mig_layout[handle.mig].gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: SimMigHandle) -> int:
        return self._mig(handle).mig_layout[handle.mig].compute_instance_id

    def nvmlDeviceGetAttributes(self, handle: Union[SimHandle, SimMigHandle]) -> Any:
        """A MIG device's slices and memory; the whole GPU's for a GPU handle."""
        g = self._any(handle)
        attrs = pynvml.c_nvmlDeviceAttributes()
        if isinstance(handle, SimMigHandle):
            spec = g.mig_layout[handle.mig]
            attrs.gpuInstanceSliceCount, attrs.computeInstanceSliceCount = spec.gpu_slices, spec.compute_slices
            attrs.memorySizeMB = spec.mem_mib
            attrs.multiprocessorCount = 14 * spec.compute_slices
        else:
            attrs.gpuInstanceSliceCount = attrs.computeInstanceSliceCount = 7
            attrs.memorySizeMB = g.board.mem_total_mib
            attrs.multiprocessorCount = 108
        return attrs

    # -- dynamic values ---------------------------------------------------------
    def nvmlDeviceGetMemoryInfo(self, handle: Union[SimHandle, SimMigHandle], version: Any = None) -> Any:
        g = self._any(handle)
        if isinstance(handle, SimMigHandle):
            total, used = g.mig_layout[handle.mig].mem_mib * MIB, g.mig_mem_used_mib(handle.mig) * MIB
        else:
            total, used = g.board.mem_total_mib * MIB, g.mem_used_mib * MIB
        return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)

    def nvmlDeviceGetUtilizationRates(self, handle: SimHandle) -> Any:
        g = self._gpu(handle)
        if g.mig:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return pynvml.c_nvmlUtilization_t(gpu=round(g.util), memory=round(g.mem_util))

    def nvmlDeviceGetTemperature(self, handle: SimHandle, sensor: int) -> int:
        return round(self._gpu(handle).temp_c)

    def nvmlDeviceGetPowerUsage(self, handle: SimHandle) -> int:
        return int(self._gpu(handle).power_w * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: SimHandle) -> int:
        return int(self._gpu(handle).power_limit_w * 1000)

    def nvmlDeviceGetClockInfo(self, handle: SimHandle, clock: int) -> int:
        g = self._gpu(handle)
        return g.sm_clock_mhz if clock == pynvml.NVML_CLOCK_SM else g.board.mem_mhz

    def nvmlDeviceGetFanSpeed(self, handle: SimHandle) -> int:
        g = self._gpu(handle)
        if not g.board.has_fan:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return g.fan_pct

    def nvmlDeviceGetPerformanceState(self, handle: SimHandle) -> int:
        return self._gpu(handle).pstate

    def nvmlDeviceGetComputeMode(self, handle: SimHandle) -> int:
        g = self._gpu(handle)
        return self.driver.compute_mode(g.uuid) if self.driver is not None else g.compute_mode

    def nvmlDeviceSetComputeMode(self, handle: SimHandle, mode: int) -> None:
        """As the real driver: root only (emulated with the effective uid)."""
        g = self._gpu(handle)
        if os.geteuid() != 0:
            raise _error(pynvml.NVML_ERROR_NO_PERMISSION)
        if mode not in (0, 1, 2, 3):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        g.compute_mode = mode
        if self.driver is not None:
            self.driver.set_compute_mode(g.uuid, mode)

    def nvmlDeviceGetPersistenceMode(self, handle: SimHandle) -> int:
        self._gpu(handle)
        return self.persistence

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: SimHandle) -> int:
        return clocks_event_mask(self._gpu(handle))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Union[SimHandle, SimMigHandle]) -> List[Any]:
        """The GPU's processes (on a MIG GPU each with its instance's ids, as
        the driver gives them to root), or one MIG device's."""
        g = self._any(handle)
        only = handle.mig if isinstance(handle, SimMigHandle) else None
        if self.driver is not None and self.attached:
            listed = [(p["pid"], p.get("mem_mib", 0), p.get("mig")) for p in self.driver.processes(g.uuid)]
        elif g.job is None or g.job.pid is None:
            listed = []
        else:
            listed = [(g.job.pid, g.job.mem_mib, g.job_instance())]
        return [self._process_info(pid, mem, g, k) for pid, mem, k in listed if only is None or k == only]

    def nvmlDeviceGetProcessUtilization(self, handle: SimHandle, last_seen_us: int) -> List[Any]:
        """One sample per job since ``last_seen_us``: the job is the GPU's only
        process, so its shares are the GPU's utilisation. NOT_FOUND when no
        sample is newer, as the driver says it."""
        g = self._gpu(handle)
        if g.mig:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        stamp = int(time.time() * 1e6)
        job = g.job
        if job is None or job.pid is None or stamp <= last_seen_us:
            raise _error(pynvml.NVML_ERROR_NOT_FOUND)
        sample = pynvml.c_nvmlProcessUtilizationSample_t(
            pid=job.pid, timeStamp=stamp, smUtil=round(g.util), memUtil=round(g.mem_util), encUtil=0, decUtil=0
        )
        return [sample]

    @staticmethod
    def _process_info(pid: int, mem_mib: int, g: SimGpu, k: Optional[int]) -> Any:
        spec = g.mig_layout[k] if k is not None and k < len(g.mig_layout) else None
        info = {
            "pid": pid,
            "usedGpuMemory": mem_mib * MIB,
            "gpuInstanceId": 0xFFFFFFFF if spec is None else spec.gpu_instance_id,
            "computeInstanceId": 0xFFFFFFFF if spec is None else spec.compute_instance_id,
        }
        return pynvml.nvmlFriendlyObject(info)

    def nvmlDeviceGetFieldValues(self, handle: SimHandle, field_ids: Sequence[int]) -> List[FieldValue]:
        g = self._gpu(handle)
        known = self._field_table(g)
        stamp = int(time.time() * 1e6)
        out = []
        for fid in field_ids:
            number = known.get(fid)
            failing = self.failing.get((g.index, fid))
            if failing is not None:
                out.append(FieldValue(fid, failing, 0, None, stamp))
            elif fid in self.missing or number is None:
                out.append(FieldValue(fid, pynvml.NVML_ERROR_NOT_SUPPORTED, 0, None, stamp))
            elif fid in _UINT_FIELDS:
                out.append(FieldValue(fid, pynvml.NVML_SUCCESS, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, int(number), stamp))
            else:
                out.append(FieldValue(fid, pynvml.NVML_SUCCESS, pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, int(number), stamp))
        return out

    def _field_table(self, g: SimGpu) -> Dict[int, Optional[float]]:
        p = pynvml
        return {
            p.NVML_FI_DEV_MEMORY_TEMP: g.mem_temp_c if g.board.has_mem_temp else None,
            p.NVML_FI_DEV_POWER_INSTANT: g.power_w * 1000,
            p.NVML_FI_DEV_POWER_CURRENT_LIMIT: g.power_limit_w * 1000,
            p.NVML_FI_DEV_ECC_SBE_VOL_TOTAL: g.ecc_vol_sbe,
            p.NVML_FI_DEV_ECC_DBE_VOL_TOTAL: g.ecc_vol_dbe,
            p.NVML_FI_DEV_ECC_SBE_AGG_TOTAL: g.ecc_agg_sbe,
            p.NVML_FI_DEV_ECC_DBE_AGG_TOTAL: g.ecc_agg_dbe,
            p.NVML_FI_DEV_REMAPPED_COR: g.remap_cor,
            p.NVML_FI_DEV_REMAPPED_UNC: g.remap_unc,
            p.NVML_FI_DEV_REMAPPED_PENDING: g.remap_pending,
            p.NVML_FI_DEV_REMAPPED_FAILURE: g.remap_failure,
            p.NVML_FI_DEV_PCIE_COUNT_TX_BYTES: g.pcie_tx,
            p.NVML_FI_DEV_PCIE_COUNT_RX_BYTES: g.pcie_rx,
            p.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP: g.thr_power_ns,
            p.NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST: 0,
            p.NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN: g.thr_sw_thermal_ns,
            p.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN: g.thr_hw_thermal_ns,
            p.NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN: 0,
            p.NVML_FI_DEV_PCIE_REPLAY_COUNTER: g.pcie_replays,
            p.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: g.nvlink_crc_flit if g.board.nvlinks else None,
            p.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: g.nvlink_crc_data if g.board.nvlinks else None,
            p.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: g.nvlink_replay if g.board.nvlinks else None,
            p.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: g.nvlink_recovery if g.board.nvlinks else None,
        }

    def fail_field(self, gpu: int, field: str, code: int) -> None:
        """From now on, field ``field`` (an NVML_FI_* name) of GPU ``gpu``
        answers ``code``, as a GPU going bad does."""
        self.failing[(gpu, getattr(pynvml, field))] = code

    def kernel_log(self) -> Any:
        """What the agent reads instead of ``journalctl -k`` on a simulated host."""
        return self.xids.kernel_log()


_UINT_FIELDS = {
    pynvml.NVML_FI_DEV_MEMORY_TEMP,
    pynvml.NVML_FI_DEV_POWER_INSTANT,
    pynvml.NVML_FI_DEV_POWER_CURRENT_LIMIT,
}


def _mirror_constants() -> None:
    """pynvml's constants as class attributes of SimNvml, so that code reading
    ``nvml.NVML_SUCCESS`` from either finds it at once (``__getattr__`` remains
    for anything else)."""
    for name in dir(pynvml):
        if name.startswith(("NVML_", "nvmlClocks", "nvmlEventType")):
            setattr(SimNvml, name, getattr(pynvml, name))


_mirror_constants()
