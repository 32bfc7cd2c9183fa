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
    # Link health: cumulative counters; NVLink ones are NVML's own sums over
    # the links, and a board without NVLink answers NOT_SUPPORTED (dropped).
    ("pcie_replays", "NVML_FI_DEV_PCIE_REPLAY_COUNTER"),
    ("nvlink_crc_flit", "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"),
    ("nvlink_crc_data", "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"),
    ("nvlink_replay", "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"),
    ("nvlink_recovery", "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"),
]

NVLINK_FIELDS = (
    ("nvlink_crc_flit", "crc_flit"),
    ("nvlink_crc_data", "crc_data"),
    ("nvlink_replay", "replay"),
    ("nvlink_recovery", "recovery"),
)

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


def error_names(nvml: Any) -> Dict[int, str]:
    """NVML return codes to short names (``gpu_is_lost``, ``unknown``): what an
    operator can search for, unlike the number."""
    out: Dict[int, str] = {}
    for name in dir(nvml):
        if name.startswith("NVML_ERROR_"):
            code = getattr(nvml, name)
            if isinstance(code, int):
                out.setdefault(code, name[len("NVML_ERROR_") :].lower())
    return out


class FieldDecoder:
    """Turns ``c_nvmlFieldValue_t`` into numbers; constants looked up once,
    since this runs for every field of every GPU of every sample."""

    def __init__(self, nvml: Any) -> None:
        self.ok = nvml.NVML_SUCCESS
        self.permanent = (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_NO_PERMISSION)
        kinds = [
            ("NVML_VALUE_TYPE_DOUBLE", "dVal"),
            ("NVML_VALUE_TYPE_UNSIGNED_INT", "uiVal"),
            ("NVML_VALUE_TYPE_UNSIGNED_LONG", "ulVal"),
            ("NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", "ullVal"),
            ("NVML_VALUE_TYPE_SIGNED_LONG_LONG", "sllVal"),
            ("NVML_VALUE_TYPE_SIGNED_INT", "siVal"),
        ]
        self.member = {getattr(nvml, const): member for const, member in kinds if hasattr(nvml, const)}

    def __call__(self, value: Any) -> Optional[float]:
        """One field value to a number, or ``None`` if it failed."""
        if value.nvmlReturn != self.ok:
            return None
        member = self.member.get(value.valueType)
        return None if member is None else getattr(value.value, member)


class FieldBatch:
    """The per-GPU list of fields still worth asking for."""

    def __init__(self, nvml: Any) -> None:
        self.decode = FieldDecoder(nvml)
        self.fields = resolve_fields(nvml)
        self.names = {n for n, _ in self.fields}  # asked on every sample: a set, not a scan
        self._probed = False
        self._error_names = error_names(nvml)
        # Failures other than "cannot" in the last read: field name -> error.
        self.errors: Dict[str, str] = {}

    def read(self, values: Any) -> Dict[str, Optional[float]]:
        out: Dict[str, Optional[float]] = {}
        keep = []
        errors: Dict[str, str] = {}
        ok, permanent = self.decode.ok, self.decode.permanent
        for (name, fid), value in zip(self.fields, values):
            number = self.decode(value)
            out[name] = number
            status = value.nvmlReturn
            if status != ok and status not in permanent:
                errors[name] = self._error_names.get(status, "error_%s" % status)
            # After the first answer, fields the device cannot give leave the batch.
            if status == ok or (self._probed and status not in permanent):
                keep.append((name, fid))
        self.fields = keep
        self.names = {n for n, _ in keep}
        self._probed = True
        self.errors = errors
        return out

    def ids(self) -> List[int]:
        return [fid for _, fid in self.fields]

    def has(self, name: str) -> bool:
        return name in self.names
