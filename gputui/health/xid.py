"""What an XID means, whose fault it usually is, and what to do about it.

XIDs are the NVIDIA driver's error reports. The same number can be a user's
bug or a dying board, so the table says which is the usual case: the class
follows the Kubernetes device plugin, which treats 13, 31, 43, 45 and 68 as
application errors (the GPU stays healthy) and every other XID as a reason
to take the GPU out of service. Severity and advice follow NVIDIA's XID
catalog, in the words an operator on call would use. An XID not in the
table is a warning that says to look it up, never silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from gputui.health.model import Severity


class XidClass(StrEnum):
    APPLICATION = "application"  # the job's fault, the GPU is fine
    HARDWARE = "hardware"  # the GPU (or its driver, firmware, link) needs attention


@dataclass(frozen=True)
class XidInfo:
    xid: int
    meaning: str
    cls: XidClass
    severity: Severity
    advice: str

    @property
    def application(self) -> bool:
        return self.cls is XidClass.APPLICATION


_A, _H = XidClass.APPLICATION, XidClass.HARDWARE
_I, _W, _C = Severity.INFO, Severity.WARNING, Severity.CRITICAL
_APP_BUG = "usually a bug in the job: tell its owner; if different jobs keep hitting it on this GPU only, run diagnostics"
_RESET = "reset the GPU when idle"

XID_TABLE: Mapping[int, XidInfo] = MappingProxyType(
    {
        x.xid: x
        for x in (
            XidInfo(13, "graphics engine exception (illegal instruction or address in a kernel)", _A, _I, _APP_BUG),
            XidInfo(31, "GPU memory page fault (the job touched an invalid address)", _A, _I, _APP_BUG),
            XidInfo(
                32,
                "invalid or corrupted push buffer stream",
                _H,
                _W,
                "often the PCIe link or host memory: check PCIe replays and dmesg; if it repeats, drain and reseat the GPU",
            ),
            XidInfo(
                43, "GPU stopped processing (the job hit a fault; the GPU is fine)", _A, _I, "the job's problem: tell its owner"
            ),
            XidInfo(
                45, "preemptive cleanup after an earlier error or a killed job", _A, _I, "look at the XID just before it, if any"
            ),
            XidInfo(
                48,
                "double-bit (uncorrectable) ECC error",
                _H,
                _C,
                f"jobs on it may have died or computed garbage: {_RESET} (remaps the row); replace it if it repeats",
            ),
            XidInfo(
                61,
                "internal micro-controller breakpoint or warning",
                _H,
                _W,
                f"{_RESET}; if it repeats, update driver and firmware",
            ),
            XidInfo(
                62,
                "internal micro-controller halt",
                _H,
                _C,
                "drain the GPU and reset it (often needs a node reboot); replace it if it repeats",
            ),
            XidInfo(
                63,
                "ECC page retirement or row remap recorded",
                _H,
                _W,
                f"a bad memory row is marked for remapping: {_RESET} to apply it",
            ),
            XidInfo(
                64,
                "ECC page retirement or row remap could not be recorded",
                _H,
                _C,
                "the GPU cannot hide its bad memory: drain it, run diagnostics and plan a replacement",
            ),
            XidInfo(68, "video decoder (NVDEC) exception", _A, _I, "usually the job's video input: tell its owner"),
            XidInfo(69, "graphics engine class error", _H, _W, f"{_RESET}; if it repeats with different jobs, run diagnostics"),
            XidInfo(
                74,
                "NVLink error",
                _H,
                _C,
                "drain the node and reset its GPUs; if it repeats, check the NVLink bridge or baseboard",
            ),
            XidInfo(
                79,
                "GPU has fallen off the bus",
                _H,
                _C,
                "GPU has fallen off the bus: drain the node and reseat or replace; jobs on it are lost",
            ),
            XidInfo(
                92,
                "high single-bit ECC error rate",
                _H,
                _W,
                "the memory is wearing: watch remapped rows and plan a replacement if it continues",
            ),
            XidInfo(
                94,
                "contained ECC error (the job that touched the bad memory was stopped)",
                _H,
                _W,
                f"other jobs run on; {_RESET} to remap the row",
            ),
            XidInfo(
                95,
                "uncontained ECC error",
                _H,
                _C,
                "every job on this GPU is affected: drain it and reset the GPU now",
            ),
            XidInfo(
                119,
                "GSP RPC timeout (the GPU's system processor stopped answering)",
                _H,
                _C,
                "drain the GPU and reset it or reboot the node; update the driver if it repeats",
            ),
            XidInfo(
                120,
                "GSP error",
                _H,
                _C,
                "drain the GPU and reset it or reboot the node; update the driver if it repeats",
            ),
            XidInfo(
                154,
                "GPU recovery action changed",
                _H,
                _C,
                "do what the driver asks in its message (GPU reset, node reboot, or drain and reset)",
            ),
        )
    }
)

APPLICATION_XIDS = frozenset(x.xid for x in XID_TABLE.values() if x.application)


def xid_info(xid: int) -> XidInfo:
    """The table's entry, or a warning that says to look the number up."""
    known = XID_TABLE.get(xid)
    if known is not None:
        return known
    return XidInfo(xid, "XID not in gputui's table", _H, _W, f"look up XID {xid} in NVIDIA's XID catalog; check dmesg around it")


def recovery_action(info: XidInfo, text: str | None) -> tuple[Severity, str]:
    """Severity and advice for one event: XID 154 says in its text what it needs."""
    if info.xid != 154 or not text:
        return info.severity, info.advice
    words = text.lower()
    if " to " in words:  # "changed from 0x1 (GPU Reset Required) to 0x0 (None)": what it is now
        words = words.rsplit(" to ", 1)[1]
    if "reboot" in words:
        return Severity.CRITICAL, "the driver asks for a node reboot: drain the node and reboot it"
    if "drain" in words:
        return Severity.CRITICAL, "the driver asks to drain and reset: drain the GPU, then reset it"
    if "reset" in words:
        return Severity.CRITICAL, "the driver asks for a GPU reset: reset the GPU when idle, or drain it first"
    if "none" in words:
        return Severity.INFO, "the driver needs no recovery action any more"
    return info.severity, info.advice
