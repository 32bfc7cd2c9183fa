"""One simulated GPU: jobs come and go, power follows load, heat follows power.

The state advances in fixed one-second steps from a seeded generator, so a
given seed and number of steps always gives the same values.
"""

from __future__ import annotations

import random
from typing import List, Optional, Tuple

from gputui.sim.scenarios import ECC, IDLE_HOLD, LOST, MIG, NORMAL, THROTTLE, Board, MigSpec

MIB = 1024 * 1024
_BUSES = [0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB]
AMBIENT_C = 28.0
PROHIBITED = 2  # NVML_COMPUTEMODE_PROHIBITED


def mig_uuid(gpu_uuid: str, k: int) -> str:
    """A MIG device's UUID, made from its GPU's so that the same seed gives the same."""
    rng = random.Random("%s/mig%d" % (gpu_uuid, k))
    return "MIG-%08x-%04x-%04x-%04x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48))


def pci_bus(index: int) -> int:
    """The PCI bus number of GPU ``index``, as NVML and the kernel log give it."""
    return _BUSES[index % len(_BUSES)] + (index // len(_BUSES)) * 2


class Job:
    """A workload on one GPU; ``pid`` is set once a process stands for it."""

    __slots__ = ("ends_at", "job_no", "mem_mib", "pid", "started_step", "util_target")

    def __init__(self, job_no: int, mem_mib: int, util_target: float, started_step: int, ends_at: Optional[int]) -> None:
        self.job_no = job_no
        self.mem_mib = mem_mib
        self.util_target = util_target
        self.started_step = started_step
        self.ends_at = ends_at
        self.pid: Optional[int] = None


class SimGpu:
    def __init__(
        self,
        index: int,
        board: Board,
        role: str,
        seed: int,
        busy_fraction: float,
        uuid: str,
        serial: str,
        mig_layout: Tuple[MigSpec, ...] = (),
    ) -> None:
        self.index = index
        self.board = board
        self.role = role
        self.rng = random.Random(seed)
        self.uuid = uuid
        self.serial = serial
        self.busy_fraction = busy_fraction
        self.lost = role == LOST
        self.mig = role == MIG
        # A job on a GPU in MIG mode runs on one instance: they take turns.
        self.mig_layout = mig_layout if self.mig else ()
        self.mig_uuids = [mig_uuid(uuid, k) for k in range(len(self.mig_layout))]
        self.step_no = 0
        self.jobs_started = 0
        self.job: Optional[Job] = None
        self.finished: List[Job] = []
        self.util = 0.0
        self.mem_util = 0.0
        self.power_w = board.idle_w
        self.temp_c = AMBIENT_C + 10.0
        self.power_limit_w = board.tdp_w
        self.compute_mode = 0
        self.pcie_tx = 0
        self.pcie_rx = 0
        self.thr_power_ns = 0
        self.thr_sw_thermal_ns = 0
        self.thr_hw_thermal_ns = 0
        self.ecc_vol_sbe = self.ecc_vol_dbe = 0
        self.ecc_agg_sbe = self.rng.randrange(0, 3)
        self.ecc_agg_dbe = 0
        self.remap_cor = self.remap_unc = 0
        self.remap_pending = self.remap_failure = 0
        # Link counters come from the seed, not the generator, so that adding
        # them left every other simulated value as it was.
        self.pcie_replays = seed % 3
        self.nvlink_crc_flit = self.nvlink_crc_data = self.nvlink_replay = self.nvlink_recovery = 0
        if board.nvlinks:
            self.nvlink_crc_flit = (seed >> 3) % 2
        if role == ECC:
            self.ecc_vol_sbe, self.ecc_vol_dbe = 14, 2
            self.ecc_agg_sbe, self.ecc_agg_dbe = 310, 2
            self.remap_cor, self.remap_unc, self.remap_pending = 1, 2, 1
            self.pcie_replays = 37  # a marginal link often comes with a marginal board
        if role == IDLE_HOLD:
            self._start(ends_at=None, mem_mib=30720, util_target=0.0)
        elif role == THROTTLE:
            self._start(ends_at=None, mem_mib=int(board.mem_total_mib * 0.9), util_target=99.0)
        elif self.mig_layout:
            # The partitioned GPU starts with a job on its first instance.
            self._start(self.rng.randrange(600, 5400), self._job_mem(), self.rng.uniform(55.0, 99.0))
        elif self.rng.random() < busy_fraction:
            # Start mid-life, as a host found already running would be.
            self._start(self.rng.randrange(60, 5400), self._job_mem(), self.rng.uniform(55.0, 99.0))
        if self.job is not None:
            self.util = self.job.util_target
            load = self.util / 100.0
            self.power_w = board.idle_w + load * (board.tdp_w - board.idle_w) * 0.9
            self.temp_c = AMBIENT_C + 52.0 * self.power_w / board.tdp_w

    def found_running_s(self, job: Job) -> float:
        """How long a job that was already running when the simulation began
        had been running: the idle-holding GPU's hold is old (that is the
        fault), the rest started a while ago. Jobs started later are new."""
        if job.started_step > 0:
            return 0.0
        return 3 * 3600.0 if self.role == IDLE_HOLD else 600.0

    def _job_mem(self) -> int:
        """Memory for the next job: a share of the board, or of the MIG
        instance the job will run on."""
        if self.mig_layout:
            spec = self.mig_layout[self.jobs_started % len(self.mig_layout)]
            return int(spec.mem_mib * self.rng.uniform(0.2, 0.9))
        return int(self.board.mem_total_mib * self.rng.uniform(0.2, 0.92))

    def job_instance(self) -> Optional[int]:
        """The MIG device (position in the layout) the running job is on."""
        if self.job is None or not self.mig_layout:
            return None
        return (self.job.job_no - 1) % len(self.mig_layout)

    def mig_mem_used_mib(self, k: int) -> int:
        return self.mem_used_mib if self.job_instance() == k else 0

    # -- dynamics -----------------------------------------------------------
    def _start(self, ends_at: Optional[int], mem_mib: int, util_target: float) -> None:
        self.jobs_started += 1
        self.job = Job(self.jobs_started, mem_mib, util_target, self.step_no, ends_at)

    def end_job(self) -> None:
        if self.job is not None:
            self.finished.append(self.job)
            self.job = None

    def step(self) -> None:
        self.step_no += 1
        rng = self.rng
        b = self.board
        job = self.job
        if job is not None and job.ends_at is not None and self.step_no >= job.ends_at:
            self.end_job()
            job = None
        # A GPU drained to PROHIBITED takes no new work; what runs, runs on.
        if job is None and self.role in (NORMAL, MIG) and self.compute_mode != PROHIBITED and rng.random() < self._start_rate():
            self._start(self.step_no + rng.randrange(300, 5400), self._job_mem(), rng.uniform(55.0, 99.0))
            job = self.job
        target = 0.0 if job is None else job.util_target
        if job is not None and target > 0:
            target = min(100.0, max(0.0, target + rng.gauss(0.0, 6.0)))
        self.util += (target - self.util) * 0.6
        self.mem_util = self.util * 0.55 if job is not None else 0.0
        load = self.util / 100.0
        power = b.idle_w + load * (b.tdp_w - b.idle_w) * rng.uniform(0.82, 0.97)
        if job is not None and load < 0.01:
            power = b.idle_w * 1.3  # a context is resident even when nothing runs
        self.power_w = min(power, self.power_limit_w)
        if power >= self.power_limit_w * 0.98:
            self.thr_power_ns += 300_000_000
        heat = AMBIENT_C + 52.0 * self.power_w / b.tdp_w
        if self.role == THROTTLE:
            heat = b.slowdown_c + 3.0
        self.temp_c += (heat - self.temp_c) * 0.08 + rng.gauss(0.0, 0.3)
        if self.role == THROTTLE:
            self.temp_c = max(self.temp_c, float(b.slowdown_c))
        if self.throttling:
            self.thr_sw_thermal_ns += 1_000_000_000
            self.thr_hw_thermal_ns += 700_000_000
        rate = b.pcie_gbps * 1e9 / 8
        self.pcie_rx += int(rate * load * rng.uniform(0.01, 0.08))
        self.pcie_tx += int(rate * load * rng.uniform(0.005, 0.03))
        if self.role == ECC and rng.random() < 0.02:
            self.ecc_vol_sbe += 1
            self.ecc_agg_sbe += 1

    def _start_rate(self) -> float:
        # Chosen so that, over time, busy_fraction of the time a job runs:
        # mean job length ~2850 steps; idle gaps average 2850*(1-f)/f steps.
        f = min(max(self.busy_fraction, 0.05), 0.98)
        return f / (2850.0 * (1.0 - f))

    # -- what NVML would report ---------------------------------------------
    @property
    def throttling(self) -> bool:
        return self.temp_c >= self.board.slowdown_c

    @property
    def mem_used_mib(self) -> int:
        return 0 if self.job is None else self.job.mem_mib + 512

    @property
    def sm_clock_mhz(self) -> int:
        b = self.board
        if self.util < 1.0:
            return b.idle_sm_mhz
        if self.throttling:
            return int(b.max_sm_mhz * 0.62)
        return b.max_sm_mhz

    @property
    def pstate(self) -> int:
        return 0 if self.job is not None else 8

    @property
    def fan_pct(self) -> int:
        return int(min(100.0, max(30.0, 30.0 + (self.temp_c - 40.0) * 1.6)))

    @property
    def mem_temp_c(self) -> int:
        return int(self.temp_c + 4.0)
