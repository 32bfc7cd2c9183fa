"""The one path every NVML call takes: counted, and failures turned into data.

NVML answers "I can't" in many ways (NOT_SUPPORTED on a fanless board,
NO_PERMISSION for a non-root user, GPU_IS_LOST when a GPU fell off the bus).
None of them may crash the agent, and none may turn into a 0 on screen: a
value that cannot be read is ``None`` and goes out as JSON ``null``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Set, Tuple


class GpuLost(Exception):
    """The GPU answered GPU_IS_LOST: stop asking it anything this sample."""


class _NeverRaised(Exception):
    """Stands in for an exception class the binding does not have."""


class NvmlCaller:
    """Wraps an NVML module (real ``pynvml`` or the simulator) for one agent.

    ``calls`` counts every NVML function invoked so that the cost of a
    sample can be measured and put in the frame. Calls that a device
    answered with NOT_SUPPORTED or NO_PERMISSION are remembered per device
    and never repeated: the answer will not change while the agent runs, and
    asking again every second is wasted work on the host.
    """

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self.calls = 0
        self._permanent = {
            nvml.NVML_ERROR_NOT_SUPPORTED: "not_supported",
            nvml.NVML_ERROR_NO_PERMISSION: "no_permission",
            nvml.NVML_ERROR_FUNCTION_NOT_FOUND: "not_supported",
        }
        self._lost = nvml.NVML_ERROR_GPU_IS_LOST
        # pynvml raises this (not an NVMLError) when the driver lacks a call's version.
        self._mismatch = getattr(nvml, "NVMLLibraryMismatchError", None) or _NeverRaised
        self._unavailable: Set[Tuple[int, str]] = set()
        self.errors: Dict[Tuple[int, str], str] = {}
        # Failures that may pass (UNKNOWN, TIMEOUT...), by GPU, until its reader
        # takes them into the sample: an operator needs to see a GPU going bad.
        self.transient: Dict[int, Dict[str, str]] = {}
        self._names: Optional[Dict[int, str]] = None

    def call(self, name: str, *args: Any) -> Any:
        """Call an NVML function, counting it; errors propagate."""
        self.calls += 1
        return getattr(self.nvml, name)(*args)

    def unavailable(self, gpu: int, name: str) -> bool:
        return (gpu, name) in self._unavailable

    def query(self, gpu: int, name: str, *args: Any, empty: Tuple[int, ...] = (), where: str = "") -> Optional[Any]:
        """Call a per-device function; ``None`` when the device cannot answer.

        Raises :class:`GpuLost` when the device is gone, so that the caller
        can mark the whole GPU and move on to the next one. Error codes in
        ``empty`` are the function's way of saying "nothing": ``[]``.
        ``where`` names a part of the GPU (a MIG instance: ``mig1:``) whose
        answers are remembered apart from the whole GPU's: an instance that
        cannot give its memory says nothing about its parent.
        """
        key = where + name
        if (gpu, key) in self._unavailable:
            return None
        try:
            return self.call(name, *args)
        except self._mismatch:
            self._unavailable.add((gpu, key))
            self.errors[(gpu, key)] = "not_in_driver"
            return None
        except self.nvml.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code == self._lost:
                raise GpuLost() from exc
            if code in empty:
                return []
            reason = self._permanent.get(code)
            if reason is not None:
                self._unavailable.add((gpu, key))
                self.errors[(gpu, key)] = reason
            else:
                self.errors[(gpu, key)] = "nvml_error_%s" % code
                self.transient.setdefault(gpu, {})[key] = self.error_name(code)
            return None

    def error_name(self, code: Any) -> str:
        if self._names is None:
            from gputui.agent.fields import error_names

            self._names = error_names(self.nvml)
        return self._names.get(code, "error_%s" % code)


def text(value: Any) -> Optional[str]:
    """NVML strings arrive as ``str`` or ``bytes`` depending on the binding."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip("\x00")
    return str(value)
