"""XIDs as they happen, through NVML's event API.

``nvmlEventSetWait`` blocks, so in the agent it runs in a daemon thread of
its own: a sample is never late because the driver had nothing to say. What
the thread hears goes through a bounded, thread-safe deque, and the next
sample takes it, so every event is sent exactly once. Its NVML calls are
counted apart from the sampling calls, which have a per-GPU budget.

Where a thread per host would be too many (the in-process demo runs hundreds
of simulated hosts), :meth:`XidWatcher.pump` asks without waiting instead,
once a sample.
"""

from __future__ import annotations

import collections
import ctypes
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

WAIT_MS = 1000
MAX_QUEUED = 500  # an XID storm must not grow the agent without bound
MAX_PER_PUMP = 100


def handle_key(handle: Any) -> Any:
    """Something equal for equal device handles: the pointer's address for
    pynvml's ctypes handles (the event's handle is a new object for the same
    device), the handle itself otherwise."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


class XidWatcher:
    """One event set for the GPUs that accept XID events."""

    def __init__(self, nvml: Any, wall: Callable[[], float], wait_ms: int = WAIT_MS) -> None:
        self.nvml = nvml
        self.wall = wall
        self.wait_ms = wait_ms
        self.calls = 0  # the event API's own count, outside the sampling budget
        self.set: Any = None
        self.gpus: Dict[Any, int] = {}
        self.queue: Deque[Dict[str, Any]] = collections.deque(maxlen=MAX_QUEUED)
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.error: Optional[str] = None
        wait = getattr(nvml, "nvmlEventSetWait_v2", None)
        self._wait: Any = wait if wait is not None else getattr(nvml, "nvmlEventSetWait", None)
        self._timeout = getattr(nvml, "NVML_ERROR_TIMEOUT", None)

    def _call(self, name: str, *args: Any) -> Any:
        self.calls += 1
        return getattr(self.nvml, name)(*args)

    def open(self, handles: Sequence[Tuple[int, Any]]) -> int:
        """Register each GPU; those that refuse (NOT_SUPPORTED, lost) are
        skipped. Returns how many listen; with none, the set is freed."""
        xid_type = getattr(self.nvml, "nvmlEventTypeXidCriticalError", None)
        if self._wait is None or xid_type is None:
            self.error = "no event API in this binding"
            return 0
        try:
            self.set = self._call("nvmlEventSetCreate")
        except self.nvml.NVMLError as exc:
            self.error = "event set: %s" % exc
            return 0
        for index, handle in handles:
            try:
                self._call("nvmlDeviceRegisterEvents", handle, xid_type, self.set)
            except self.nvml.NVMLError:
                continue
            self.gpus[handle_key(handle)] = index
        if not self.gpus:
            self._free()
        return len(self.gpus)

    def start(self) -> None:
        if self.set is not None and self.thread is None:
            self.thread = threading.Thread(target=self._listen, name="xid-events", daemon=True)
            self.thread.start()

    def _listen(self) -> None:
        while not self.stop.is_set():
            if not self._wait_once(self.wait_ms) and self.error is not None:
                return

    def _wait_once(self, timeout_ms: int) -> bool:
        """One wait: True when an event came."""
        try:
            self.calls += 1
            data = self._wait(self.set, timeout_ms)
        except self.nvml.NVMLError as exc:
            if getattr(exc, "value", None) != self._timeout:
                self.error = "event wait: %s" % exc
            return False
        self._take(data)
        return True

    def _take(self, data: Any) -> None:
        xid_type = self.nvml.nvmlEventTypeXidCriticalError
        if not int(data.eventType) & xid_type:
            return
        event: Dict[str, Any] = {"xid": int(data.eventData), "t": round(self.wall(), 3), "source": "nvml"}
        gpu = self.gpus.get(handle_key(data.device))
        if gpu is not None:
            event["gpu"] = gpu
        self.queue.append(event)

    def pump(self) -> None:
        """Take what is waiting without blocking, for callers without the thread."""
        if self.set is None or self.thread is not None or self.error is not None:
            return
        for _ in range(MAX_PER_PUMP):
            if not self._wait_once(0):
                return

    def drain(self) -> List[Dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.queue.popleft())
            except IndexError:
                return out

    def close(self) -> None:
        """Stop the thread, then free the set; a thread still inside the driver
        after twice its timeout keeps the set (freeing it under a waiter would
        be worse than leaking it at exit)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=2.0 * self.wait_ms / 1000.0 + 0.5)
            if self.thread.is_alive():
                return
        self._free()

    def _free(self) -> None:
        if self.set is not None:
            try:
                self._call("nvmlEventSetFree", self.set)
            except self.nvml.NVMLError:
                pass
            self.set = None
