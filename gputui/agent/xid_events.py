"""XIDs as they happen, through NVML's event API.

``nvmlEventSetWait`` blocks, so in the agent it runs in a daemon thread of
its own: a sample is never late because the driver had nothing to say. What
the thread hears goes through a bounded, thread-safe deque, and the next
sample takes it, so every event is sent exactly once. Its NVML calls are
counted apart from the sampling calls, which have a per-GPU budget.

Where a thread per host would be too many (the in-process demo runs hundreds
of simulated hosts), :meth:`XidWatcher.pump` asks without waiting instead,
once a sample.

A wait that fails (anything but TIMEOUT) does not end the listening: the
watcher backs off (1 s, doubling up to 30 s) and waits again. GPU_IS_LOST,
or a third failure in a row, makes the event set anew from the GPUs that
listened at start; a GPU that now refuses (the lost one) is left out. While
waits fail, :meth:`XidWatcher.errors` names the problem for every listening
GPU (the sampler puts it in their ``field_errors``, as ``xid_events``), and
it clears on the next wait that succeeds; a GPU left out stays named.
"""

from __future__ import annotations

import collections
import ctypes
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

WAIT_MS = 1000
MAX_QUEUED = 500  # an XID storm must not grow the agent without bound
MAX_PER_PUMP = 100
BACKOFF_S = 1.0  # after a failed wait; doubles with each failure in a row
BACKOFF_MAX_S = 30.0
REOPEN_AFTER = 3  # failures in a row before the event set is made anew
ERROR_KEY = "xid_events"  # the name in a GPU's field_errors


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
        self.backoff_s = BACKOFF_S
        self.backoff_max_s = BACKOFF_MAX_S
        self.calls = 0  # the event API's own count, outside the sampling budget
        self.set: Any = None
        self.gpus: Dict[Any, int] = {}  # handle key -> GPU index, of the set now listening
        self.wanted: List[Tuple[int, Any]] = []  # the GPUs that accepted at start
        self.queue: Deque[Dict[str, Any]] = collections.deque(maxlen=MAX_QUEUED)
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        # Read by the sampling thread, written by the waiting one: under the lock.
        self.lock = threading.Lock()
        self.error: Optional[str] = None  # the last failure, until a wait succeeds
        self.dropped: Dict[int, str] = {}  # GPU index -> why it no longer listens
        self.failures = 0  # failed waits (or remakes) in a row
        self.lost = False  # the last failure was GPU_IS_LOST
        self.retry_at = 0.0  # time.monotonic() before which no retry
        wait = getattr(nvml, "nvmlEventSetWait_v2", None)
        self._wait: Any = wait if wait is not None else getattr(nvml, "nvmlEventSetWait", None)
        self._timeout = getattr(nvml, "NVML_ERROR_TIMEOUT", None)
        self._gpu_lost = getattr(nvml, "NVML_ERROR_GPU_IS_LOST", 15)  # nvml.h: a stable value

    def _call(self, name: str, *args: Any) -> Any:
        self.calls += 1
        return getattr(self.nvml, name)(*args)

    def open(self, handles: Sequence[Tuple[int, Any]]) -> int:
        """Register each GPU; those that refuse (NOT_SUPPORTED, lost) are
        skipped. Returns how many listen; with none, the set is freed."""
        if self._wait is None or getattr(self.nvml, "nvmlEventTypeXidCriticalError", None) is None:
            self.error = "no event API in this binding"
            return 0
        refused = self._make_set(handles)
        if refused is None:
            return 0
        self.wanted = [(index, handle) for index, handle in handles if index not in refused]
        return len(self.gpus)

    def _make_set(self, handles: Sequence[Tuple[int, Any]]) -> Optional[Dict[int, str]]:
        """A new event set for ``handles`` (kept only when one accepts): the
        refusals, by GPU index, or None when no set could be created."""
        try:
            new = self._call("nvmlEventSetCreate")
        except self.nvml.NVMLError as exc:
            self._failed("event set: %s" % exc, lost=False)
            return None
        xid_type = self.nvml.nvmlEventTypeXidCriticalError
        gpus: Dict[Any, int] = {}
        refused: Dict[int, str] = {}
        for index, handle in handles:
            try:
                self._call("nvmlDeviceRegisterEvents", handle, xid_type, new)
            except self.nvml.NVMLError as exc:
                refused[index] = str(exc)
                continue
            gpus[handle_key(handle)] = index
        self.gpus = gpus
        self.set = new
        if not gpus:
            self._free()
        return refused

    def _remake(self) -> bool:
        """The event set made anew from the GPUs that listened at start,
        without those that now refuse. True when some GPU listens again."""
        self._free()
        refused = self._make_set(self.wanted)
        if refused is None:
            return False
        with self.lock:
            self.dropped = {index: "not listening: %s" % why for index, why in refused.items()}
            self.lost = False
        if self.set is None:
            self._failed("event set: no GPU accepts XID events", lost=False)
            return False
        return True

    def _failed(self, message: str, lost: bool) -> None:
        with self.lock:
            self.error = message
            self.failures += 1
            self.lost = lost
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** min(self.failures - 1, 16))
            self.retry_at = time.monotonic() + delay

    def _succeeded(self) -> None:
        if self.failures or self.error is not None:
            with self.lock:
                self.failures = 0
                self.error = None
                self.lost = False

    def _remake_due(self) -> bool:
        return self.set is None or self.lost or self.failures >= REOPEN_AFTER

    def errors(self) -> Dict[int, str]:
        """GPU index -> what keeps its XIDs from being heard, for ``field_errors``."""
        with self.lock:
            out = dict(self.dropped)
            if self.error is not None:
                for index, _ in self.wanted:
                    out.setdefault(index, self.error)
            return out

    def start(self) -> None:
        if self.set is not None and self.thread is None:
            self.thread = threading.Thread(target=self._listen, name="xid-events", daemon=True)
            self.thread.start()

    def _listen(self) -> None:
        while not self.stop.is_set():
            if self.set is not None:
                if self._wait_once(self.wait_ms) is not None:
                    continue
                if self.lost and self.failures == 1 and self._remake():
                    continue  # a GPU fell off: without it, straight away
            if self.stop.wait(max(0.0, self.retry_at - time.monotonic())):
                return
            if self._remake_due():
                self._remake()

    def _wait_once(self, timeout_ms: int) -> Optional[bool]:
        """One wait: True when an event came, False when none did, None when
        the wait failed (the failure is recorded)."""
        try:
            self.calls += 1
            data = self._wait(self.set, timeout_ms)
        except self.nvml.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code == self._timeout:
                self._succeeded()
                return False
            self._failed("event wait: %s" % exc, lost=code is not None and code == self._gpu_lost)
            return None
        self._succeeded()
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
        """Take what is waiting without blocking, for callers without the
        thread; after a failure, not again before the back-off has passed."""
        if self.thread is not None or not self.wanted:
            return
        if self.set is None or self.failures:
            if time.monotonic() < self.retry_at:
                return
            if self._remake_due() and not self._remake():
                return
        for _ in range(MAX_PER_PUMP):
            got = self._wait_once(0)
            if got:
                continue
            if got is None and self.lost and self.failures == 1 and self._remake():
                continue
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
