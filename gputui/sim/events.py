"""The simulated driver's XIDs: NVML event sets and the kernel log.

An XID happens once and is seen two ways, as on a real host: an event for
each event set registered for that GPU, and a line in the kernel log. The
scenario plants some (:data:`gputui.sim.scenarios.ROLE_XIDS`): those from
before the agent started are only in the log; the others arrive through the
event API shortly after registration. Others are injected while the host
runs, in process (:meth:`SimXids.inject`) or from another process through
the driver state's ``pending_xids`` (see :mod:`gputui.sim.driver`).

Event sets are waited on from the agent's event thread while its sampling
thread calls everything else, so everything here is under a condition
variable, and the waiting thread reads the driver state through its own
:class:`DriverState` (whose read cache is not shared).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pynvml

from gputui.sim.driver import DriverState
from gputui.sim.gpu import pci_bus
from gputui.sim.scenarios import ROLE_XIDS

PLANT_DELAY_S = 0.5  # sim clock seconds after registration
POLL_S = 0.25  # how often a waiter looks for XIDs pushed by another process
XID_EVENT = 8  # nvmlEventTypeXidCriticalError
TEXTS = {
    13: "Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address",
    31: "Ch 00000010, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 faulted @ 0x7f3a_00000000.",
    43: "Ch 00000008, errorString CTX SWITCH TIMEOUT, Info 0x3c040",
    63: "Row Remapper: New row marked for remapping, reset gpu to activate.",
    64: "Row Remapper: Failed to remap a row.",
    74: "NVLink: fatal error detected on link 4(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)",
    94: "Contained: SM (0x1). RST: No, D-RST: No",
    95: "Uncontained: FBHUB. RST: Yes, D-RST: No",
    119: "Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 76 (GSP_RM_CONTROL).",
}
HOUR = 3600.0


class SimEventData:
    """What ``c_nvmlEventData_t`` offers, as a plain object (the real one's
    ``device`` is a ctypes handle and cannot hold a simulated one)."""

    __slots__ = ("computeInstanceId", "device", "eventData", "eventType", "gpuInstanceId")

    def __init__(self, device: Any, xid: int) -> None:
        self.device = device
        self.eventType = XID_EVENT
        self.eventData = xid
        self.gpuInstanceId = 0xFFFFFFFF
        self.computeInstanceId = 0xFFFFFFFF


class SimEventSet:
    """One ``nvmlEventSet_t``: the GPUs registered and the XIDs due for them."""

    def __init__(self, xids: SimXids) -> None:
        self.xids = xids
        self.cond = threading.Condition()
        self.registered: Dict[int, Any] = {}  # GPU index -> handle
        self.due: List[Tuple[float, int, int]] = []  # (sim time, GPU, XID)
        self.freed = False
        self.driver = xids.own_driver()

    def register(self, index: int, handle: Any) -> None:
        with self.cond:
            self.registered[index] = handle

    def push(self, when: float, gpu: int, xid: int) -> bool:
        with self.cond:
            if gpu not in self.registered or self.freed:
                return False
            self.due.append((when, gpu, xid))
            self.cond.notify_all()
            return True

    def wait(self, timeout_ms: int) -> Optional[SimEventData]:
        """The next XID due, waiting up to ``timeout_ms``; None when none came."""
        deadline = time.monotonic() + max(0, timeout_ms) / 1000.0
        with self.cond:
            while not self.freed:
                self._take_pushed()
                now = self.xids.clock()
                ready = [d for d in self.due if d[0] <= now]
                if ready:
                    first = min(ready)
                    self.due.remove(first)
                    self.xids.log(first[1], first[2], "nvml", self.driver)
                    return SimEventData(self.registered[first[1]], first[2])
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, POLL_S))
        return None

    def _take_pushed(self) -> None:
        """XIDs another process pushed into the driver state: taken once, and
        logged by the kernel even for a GPU nobody listens to."""
        if self.driver is None or not self.driver.has_pending_xids():
            return
        now = self.xids.clock()
        for x in self.driver.take_xids():
            if x["gpu"] in self.registered:
                self.due.append((now, x["gpu"], x["xid"]))
            else:
                self.xids.log(x["gpu"], x["xid"], "kernel", self.driver)

    def free(self) -> None:
        with self.cond:
            self.freed = True
            self.cond.notify_all()


class SimXids:
    """A simulated host's XIDs: its event sets and its kernel log."""

    def __init__(
        self,
        roles: Dict[int, str],
        driver_version: str,
        host: str,
        clock: Callable[[], float],
        state: Optional[Tuple[str, str]] = None,
    ) -> None:
        """``state`` is (state dir, host) when the driver state is shared."""
        self.roles = roles
        self.driver_version = driver_version
        self.host = host
        self.clock = clock
        self.state = state
        self.lock = threading.Lock()
        self.sets: List[SimEventSet] = []
        self.logged: List[Dict[str, Any]] = []  # without a driver state
        self.wait_failure: Optional[int] = None  # what every wait answers, when set
        driver = self.own_driver()
        # Stable across restarts of the host's agents: from the driver state,
        # else the same for every process in the same hour.
        guess = (time.time() // HOUR) * HOUR - 5 * HOUR
        self.booted = driver.booted_at(guess) if driver is not None else guess

    def own_driver(self) -> Optional[DriverState]:
        return None if self.state is None else DriverState(*self.state)

    def new_set(self) -> SimEventSet:
        event_set = SimEventSet(self)
        with self.lock:
            self.sets.append(event_set)
        return event_set

    def free(self, event_set: SimEventSet) -> None:
        event_set.free()
        with self.lock:
            if event_set in self.sets:
                self.sets.remove(event_set)

    def registered(self, event_set: SimEventSet, index: int, handle: Any) -> None:
        """Plant the role's XID that happens after the agent started, unless a
        previous run of this host already had it."""
        event_set.register(index, handle)
        xid = ROLE_XIDS.get(self.roles.get(index, ""))
        if xid is None or xid[1] != "nvml":
            return
        if any(e.get("planted") and e.get("gpu") == index and e.get("xid") == xid[0] for e in self._logged()):
            return
        event_set.push(self.clock() + PLANT_DELAY_S, index, xid[0])

    def inject(self, gpu: int, xid: int) -> None:
        """An XID now, in process: an event for every listening set, and a log line."""
        with self.lock:
            sets = list(self.sets)
        heard = [s.push(self.clock(), gpu, xid) for s in sets]
        if not any(heard):
            self.log(gpu, xid, "kernel", self.own_driver())

    def log(self, gpu: int, xid: int, how: str, driver: Optional[DriverState]) -> None:
        planted = ROLE_XIDS.get(self.roles.get(gpu, ""), (None,))[0] == xid
        entry = {"t": round(time.time(), 6), "gpu": gpu, "xid": xid, "planted": planted}
        if driver is not None:
            driver.log_xid(entry)
        else:
            with self.lock:
                self.logged.append(entry)

    def _logged(self) -> List[Dict[str, Any]]:
        driver = self.own_driver()
        if driver is not None:
            return driver.logged_xids()
        with self.lock:
            return list(self.logged)

    def kernel_log(self) -> Tuple[List[str], Optional[float]]:
        """The host's kernel log as ``journalctl -k -o short-unix`` prints it,
        and the boot time."""
        entries: List[Tuple[float, int, int]] = []
        for index, role in sorted(self.roles.items()):
            planted = ROLE_XIDS.get(role)
            if planted is not None and planted[1] == "kernel":
                entries.append((self.booted + 4 * HOUR + 723.418 + index, index, planted[0]))
        entries.extend((float(e["t"]), int(e["gpu"]), int(e["xid"])) for e in self._logged() if "t" in e)
        lines = [
            self._line(self.booted + 4.21, "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  %s" % self.driver_version),
            self._line(self.booted + 9.87, "nvidia-nvlink: Nvlink Core is being initialized, major device number 510"),
        ]
        for t, gpu, xid in sorted(entries):
            lines.append(self._line(t, self.xid_text(gpu, xid)))
        return lines, self.booted

    def _line(self, t: float, message: str) -> str:
        return "%.6f %s kernel: %s" % (t, self.host, message)

    def xid_text(self, gpu: int, xid: int) -> str:
        words = TEXTS.get(xid)
        for planted_xid, _, text in ROLE_XIDS.values():
            if planted_xid == xid:
                words = text
        return "NVRM: Xid (PCI:0000:%02x:00): %d, pid='<unknown>', name=<unknown>, %s" % (
            pci_bus(gpu),
            xid,
            words or "Unknown Error",
        )


class EventApi:
    """pynvml's event functions, for :class:`gputui.sim.nvml.SimNvml`."""

    initialised: bool
    xids: SimXids
    gpus: List[Any]

    def nvmlEventSetCreate(self) -> SimEventSet:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        return self.xids.new_set()

    def nvmlDeviceRegisterEvents(self, handle: Any, eventTypes: int, eventSet: SimEventSet) -> None:
        """XID events only, as on a board that supports nothing else; a lost
        GPU refuses, as the real one does."""
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if eventTypes & ~pynvml.nvmlEventTypeXidCriticalError:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if self.gpus[handle.index].lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        self.xids.registered(eventSet, handle.index, handle)

    def nvmlEventSetWait_v2(self, eventSet: SimEventSet, timeoutms: int) -> Any:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        if eventSet.freed:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        failure = self.xids.wait_failure
        if failure is not None:
            raise pynvml.NVMLError(failure)
        with eventSet.cond:
            registered = list(eventSet.registered)
        if any(self.gpus[index].lost for index in registered):
            # A GPU of the set fell off the bus: the driver says so to every wait on it.
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        data = eventSet.wait(timeoutms)
        if data is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)
        return data

    def nvmlEventSetWait(self, eventSet: SimEventSet, timeoutms: int) -> Any:
        return self.nvmlEventSetWait_v2(eventSet, timeoutms)

    def nvmlEventSetFree(self, eventSet: SimEventSet) -> None:
        self.xids.free(eventSet)

    def fail_event_wait(self, code: Optional[int]) -> None:
        """From now on every event wait answers ``code`` (an NVML_ERROR_*
        value), as a driver in trouble does; None makes waits work again."""
        self.xids.wait_failure = code

    def inject_xid(self, gpu: int, xid: int) -> None:
        """Make an XID happen now (in process; from another process, see
        :meth:`gputui.sim.driver.DriverState.push_xid`)."""
        self.xids.inject(gpu, xid)
