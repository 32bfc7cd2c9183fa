"""Values read in one batched ``nvmlDeviceGetFieldValues`` call per GPU.

One batched call replaces a dozen single-value calls (power, memory
temperature, ECC, retired pages, row remaps, PCIe byte counters, and the
clock-event time counters used for throttle reasons). A field that the
device answers with an error is dropped from that device's batch for good;
the handful that have an older single-value API fall back to it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

# name in the agent -> NVML field constant name. Names, not numbers, so that
# the table reads the same as NVML's documentation and the simulator.
FIELD_NAMES: List[Tuple[str, str]] = [
    ("mem_temp_c", "NVML_FI_DEV_MEMORY_TEMP"),
    ("power_mw", "NVML_FI_DEV_POWER_INSTANT"),
    ("power_limit_mw", "NVML_FI_DEV_POWER_CURRENT_LIMIT"),
    ("ecc_vol_sbe", "NVML_FI_DEV_ECC_SBE_VOL_TOTAL"),
    ("ecc_vol_dbe", "NVML_FI_DEV_ECC_DBE_VOL_TOTAL"),
    ("ecc_agg_sbe", "NVML_FI_DEV_ECC_SBE_AGG_TOTAL"),
    ("ecc_agg_dbe", "NVML_FI_DEV_ECC_DBE_AGG_TOTAL"),
    ("retired_sbe", "NVML_FI_DEV_RETIRED_SBE"),
    ("retired_dbe", "NVML_FI_DEV_RETIRED_DBE"),
    ("retired_pending", "NVML_FI_DEV_RETIRED_PENDING"),
    ("remap_cor", "NVML_FI_DEV_REMAPPED_COR"),
    ("remap_unc", "NVML_FI_DEV_REMAPPED_UNC"),
    ("remap_pending", "NVML_FI_DEV_REMAPPED_PENDING"),
    ("remap_failure", "NVML_FI_DEV_REMAPPED_FAILURE"),
    ("pcie_tx_bytes", "NVML_FI_DEV_PCIE_COUNT_TX_BYTES"),
    ("pcie_rx_bytes", "NVML_FI_DEV_PCIE_COUNT_RX_BYTES"),
    # Cumulative time spent in each clock-event (throttle) reason: a counter
    # that moved during the interval means the reason was active in it, which
    # is truer than the bitmask's instant.
    ("thr_sw_power_cap", "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP"),
    ("thr_sync_boost", "NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST"),
    ("thr_sw_thermal", "NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN"),
    ("thr_hw_thermal", "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN"),
    ("thr_hw_power_brake", "NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN"),
]

THROTTLE_COUNTERS = {
    "thr_sw_power_cap": "sw_power_cap",
    "thr_sync_boost": "sync_boost",
    "thr_sw_thermal": "sw_thermal_slowdown",
    "thr_hw_thermal": "hw_thermal_slowdown",
    "thr_hw_power_brake": "hw_power_brake",
}

# Bits of nvmlDeviceGetCurrentClocksEventReasons, for drivers without the
# counters above. "gpu_idle" and clock settings are not problems and are left out.
THROTTLE_BITS = [
    ("nvmlClocksEventReasonSwPowerCap", "sw_power_cap"),
    ("nvmlClocksEventReasonHwSlowdown", "hw_slowdown"),
    ("nvmlClocksEventReasonSyncBoost", "sync_boost"),
    ("nvmlClocksEventReasonSwThermalSlowdown", "sw_thermal_slowdown"),
    ("nvmlClocksEventReasonHwThermalSlowdown", "hw_thermal_slowdown"),
    ("nvmlClocksEventReasonHwPowerBrakeSlowdown", "hw_power_brake"),
]


def resolve_fields(nvml: Any) -> List[Tuple[str, int]]:
    """Field ids this binding knows; an older pynvml simply has fewer."""
    out = []
    for name, const in FIELD_NAMES:
        fid = getattr(nvml, const, None)
        if fid is not None:
            out.append((name, int(fid)))
    return out


def decode(nvml: Any, value: Any) -> Optional[float]:
    """One ``c_nvmlFieldValue_t`` to a number, or ``None`` if it failed."""
    if value.nvmlReturn != nvml.NVML_SUCCESS:
        return None
    vtype = value.valueType
    if vtype == nvml.NVML_VALUE_TYPE_DOUBLE:
        return float(value.value.dVal)
    if vtype == nvml.NVML_VALUE_TYPE_UNSIGNED_INT:
        return int(value.value.uiVal)
    if vtype == nvml.NVML_VALUE_TYPE_UNSIGNED_LONG:
        return int(value.value.ulVal)
    if vtype == nvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
        return int(value.value.ullVal)
    if vtype == nvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        return int(value.value.sllVal)
    if vtype == getattr(nvml, "NVML_VALUE_TYPE_SIGNED_INT", 5):
        return int(value.value.siVal)
    return None


class FieldBatch:
    """The per-GPU list of fields still worth asking for."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self.fields = resolve_fields(nvml)
        self._probed = False

    def read(self, values: Any) -> Dict[str, Optional[float]]:
        out: Dict[str, Optional[float]] = {}
        keep = []
        for (name, fid), value in zip(self.fields, values):
            number = decode(self.nvml, value)
            out[name] = number
            if number is not None or value.nvmlReturn == self.nvml.NVML_SUCCESS:
                keep.append((name, fid))
            elif self._probed is False or value.nvmlReturn in (
                self.nvml.NVML_ERROR_NOT_SUPPORTED,
                self.nvml.NVML_ERROR_NO_PERMISSION,
            ):
                continue
            else:
                keep.append((name, fid))
        # After the first answer, unsupported fields leave the batch.
        self.fields = keep
        self._probed = True
        return out

    def ids(self) -> List[int]:
        return [fid for _, fid in self.fields]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.fields)
