"""Named scenarios: which boards a simulated host has and what goes wrong.

A scenario is data: board models (what a real board of that kind reports,
including what it cannot report), a driver, and roles for particular GPUs
(thermal throttling, lost, ECC, memory held while idle). Numbers follow what
``nvidia-smi -q`` shows on such boards.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, List, NamedTuple, Optional, Tuple


class Board(NamedTuple):
    name: str
    mem_total_mib: int
    tdp_w: float
    idle_w: float
    min_limit_w: float
    slowdown_c: int
    shutdown_c: int
    max_sm_mhz: int
    idle_sm_mhz: int
    mem_mhz: int
    has_fan: bool
    has_mem_temp: bool
    pcie_gbps: float
    nvlinks: int = 0  # NVLink links (SXM boards); PCIe boards here have none
    has_tlimit: bool = True  # nvidia-smi's T.Limit margin (temperature.gpu.tlimit); older boards print [N/A]


class MigSpec(NamedTuple):
    """One MIG device of a partitioned GPU, as ``nvidia-smi mig -lgi``/``-lci`` list it."""

    gpu_instance_id: int
    compute_instance_id: int
    gpu_slices: int
    compute_slices: int
    mem_mib: int  # the GPU instance's memory (the profile's memorySizeMB)


# An A100 80GB split as 3g.40gb + 2g.20gb + 1g.10gb (memory as its profiles give it).
A100_80_MIG = (MigSpec(1, 0, 3, 3, 40192), MigSpec(5, 0, 2, 2, 19968), MigSpec(13, 0, 1, 1, 9728))


class Driver(NamedTuple):
    version: str
    nvml_version: str
    cuda: int
    # field names (NVML_FI_* constant names) this driver does not answer
    missing_fields: FrozenSet[str]


H100_SXM = Board("NVIDIA H100 80GB HBM3", 81559, 700.0, 72.0, 200.0, 89, 92, 1980, 345, 2619, False, True, 64.0, 18)
A100_PCIE_40 = Board(
    "NVIDIA A100-PCIE-40GB", 40960, 250.0, 35.0, 150.0, 89, 92, 1410, 210, 1215, True, False, 32.0, has_tlimit=False
)
A100_PCIE_80 = Board("NVIDIA A100 80GB PCIe", 81920, 300.0, 45.0, 150.0, 89, 92, 1410, 210, 1512, True, True, 32.0)

_ALWAYS_MISSING = frozenset(
    {
        # Row remapping replaced page retirement on Ampere and later boards.
        "NVML_FI_DEV_RETIRED_SBE",
        "NVML_FI_DEV_RETIRED_DBE",
        "NVML_FI_DEV_RETIRED_PENDING",
    }
)
DRIVER_550 = Driver("550.127.08", "12.550.127.08", 12040, _ALWAYS_MISSING)
DRIVER_535 = Driver(
    "535.183.01",
    "12.535.183.01",
    12020,
    _ALWAYS_MISSING
    | frozenset(
        {
            "NVML_FI_DEV_POWER_INSTANT",
            "NVML_FI_DEV_POWER_CURRENT_LIMIT",
            "NVML_FI_DEV_PCIE_COUNT_TX_BYTES",
            "NVML_FI_DEV_PCIE_COUNT_RX_BYTES",
            "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN",
            "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN",
            "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN",
        }
    ),
)

# Roles a GPU can play in a scenario.
NORMAL = "normal"
THROTTLE = "thermal_throttle"
LOST = "lost"
ECC = "ecc_remap"
IDLE_HOLD = "idle_holding"
MIG = "mig"


class Scenario(NamedTuple):
    name: str
    description: str
    boards: Tuple[Board, ...]  # cycled over GPU indices
    driver: Driver
    default_gpus: int
    # role -> preferred GPU index; on hosts with fewer GPUs roles take the
    # lowest free indices so that every role still appears.
    roles: Tuple[Tuple[str, int], ...]
    busy_fraction: float
    persistence: bool = True  # persistence mode, as the site's setup leaves it
    mig_layout: Tuple[MigSpec, ...] = ()  # the MIG devices of a GPU in the MIG role


# XIDs a role brings: (xid, where it shows first, the driver's words).
# "kernel": it happened before the agent started, so only the kernel log has
# it; "nvml": it happens shortly after the agent starts listening.
ROLE_XIDS: Dict[str, Tuple[int, str, str]] = {
    LOST: (79, "kernel", "GPU has fallen off the bus."),
    ECC: (
        48,
        "nvml",
        "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.",
    ),
}


SCENARIOS: Dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "8x H100 SXM (fanless), busy with jobs, nothing wrong", (H100_SXM,), DRIVER_550, 8, (), 0.85),
        Scenario(
            "mixed",
            "A100 PCIe boards with fans and an older driver, one A100 80GB in MIG mode",
            (A100_PCIE_40, A100_PCIE_40, A100_PCIE_40, A100_PCIE_80),
            DRIVER_535,
            4,
            ((MIG, 3),),
            0.7,
            False,
            A100_80_MIG,
        ),
        Scenario(
            "incident",
            "8x H100: one thermally throttling, one fallen off the bus (XID 79), "
            "one with uncorrected ECC and pending row remaps, one holding memory at 0% utilisation",
            (H100_SXM,),
            DRIVER_550,
            8,
            ((THROTTLE, 2), (ECC, 3), (LOST, 5), (IDLE_HOLD, 6)),
            0.8,
        ),
    )
}


def roles_for(scenario: Scenario, gpus: int) -> Dict[int, str]:
    """Place each role on its preferred index, or on the lowest free one."""
    placed: Dict[int, str] = {}
    for role, preferred in scenario.roles:
        index: Optional[int] = preferred if preferred < gpus and preferred not in placed else None
        if index is None:
            free = [i for i in range(gpus) if i not in placed]
            if not free:
                break
            index = free[0]
        placed[index] = role
    return placed


def scenario_names() -> List[str]:
    return sorted(SCENARIOS)
