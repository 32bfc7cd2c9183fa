"""The MIG devices of a GPU in MIG mode: their layout once, their use in turns.

In MIG mode a GPU is split into instances, each a device of its own to NVML
(a MIG device handle) with its own memory and processes. The layout (GPU and
compute instance ids, profile, memory size) changes only when an admin
re-partitions an idle GPU, so it is read once, for the hello: a new layout
shows when the agent next starts.

What changes costs one NVML call per instance and kind (memory used, the
process list). NVML answers no utilisation for a GPU in MIG mode, which frees
one call of the GPU's five a sample; the instances take that one call in
turns: each instance's memory, then each one's processes, and an instance
whose memory moved has its processes read next (a job came or went there).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from gputui.agent.nvml_calls import GpuLost, NvmlCaller, text

MIB = 1024 * 1024
MEMORY_SLICES = 8  # A30, A100, H100, H200: a GPU's memory comes in eighths
Turn = Tuple[int, str]  # (position in the layout, "memory" or "processes")


def profile_name(attrs: Any, parent_total_mib: Optional[int]) -> Optional[str]:
    """NVIDIA's name for an instance's profile ("3g.40gb"; "1c.3g.40gb" for a
    compute instance smaller than its GPU instance). NVML gives slice counts
    and the memory in MiB, not the name; the name's gigabytes count the
    instance's memory slices, each an eighth of the board's memory
    (a 3g.40gb instance has 39.25 GiB: four slices of an 80 GB board's ten)."""
    gi = int(attrs.gpuInstanceSliceCount)
    ci = int(attrs.computeInstanceSliceCount)
    mem_mib = int(attrs.memorySizeMB)
    if not parent_total_mib or gi <= 0:
        return None
    slice_mib = parent_total_mib / float(MEMORY_SLICES)
    slices = max(1, -(-mem_mib // int(slice_mib)))
    gb = round(slices * slice_mib / 1024.0)
    name = "%dg.%dgb" % (gi, gb)
    return name if ci >= gi or ci <= 0 else "%dc.%s" % (ci, name)


class MigReader:
    """One GPU's MIG devices: the layout for the hello, the use for samples."""

    def __init__(self, caller: NvmlCaller, gpu: int) -> None:
        self.caller = caller
        self.gpu = gpu
        self.handles: List[Any] = []
        self.layout: List[Dict[str, Any]] = []
        self.mem_used: Dict[int, Optional[int]] = {}
        self.procs: Dict[int, Optional[List[Any]]] = {}
        self.turns: Deque[Turn] = deque()

    def read_layout(self, parent: Any, parent_total_mib: Optional[int]) -> List[Dict[str, Any]]:
        """Every MIG device of the GPU, by NVML's MIG device index; an index
        NVML answers NOT_FOUND for holds no instance."""
        nvml = self.caller.nvml
        count = self.caller.query(self.gpu, "nvmlDeviceGetMaxMigDeviceCount", parent) or 0
        for index in range(count):
            try:
                handle = self.caller.call("nvmlDeviceGetMigDeviceHandleByIndex", parent, index)
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) == nvml.NVML_ERROR_GPU_IS_LOST:
                    raise GpuLost() from exc
                continue  # NOT_FOUND: no instance at this index
            self.handles.append(handle)
            self.layout.append(self._facts(index, handle, parent_total_mib))
        for pos in range(len(self.layout)):
            self.turns.append((pos, "memory"))
        for pos in range(len(self.layout)):
            self.turns.append((pos, "processes"))
        return self.layout

    def _facts(self, index: int, handle: Any, parent_total_mib: Optional[int]) -> Dict[str, Any]:
        def q(name: str) -> Any:
            return self.caller.query(self.gpu, name, handle, where="mig%d:" % index)

        mem = q("nvmlDeviceGetMemoryInfo")
        attrs = q("nvmlDeviceGetAttributes")
        return {
            "index": index,
            "uuid": text(q("nvmlDeviceGetUUID")),
            "gpu_instance_id": q("nvmlDeviceGetGpuInstanceId"),
            "compute_instance_id": q("nvmlDeviceGetComputeInstanceId"),
            "profile": None if attrs is None else profile_name(attrs, parent_total_mib),
            "mem_total_mib": None if mem is None else int(mem.total // MIB),
        }

    def read_all(self) -> None:
        """Every instance's memory and processes (the first sample is complete)."""
        for _ in range(len(self.turns)):
            self.turn()

    def turn(self) -> None:
        """One NVML call: the next instance's memory or processes."""
        if not self.turns:
            return
        pos, kind = self.turns.popleft()
        self.turns.append((pos, kind))
        where = "mig%d:" % self.layout[pos]["index"]
        handle = self.handles[pos]
        if kind == "memory":
            mem = self.caller.query(self.gpu, "nvmlDeviceGetMemoryInfo", handle, where=where)
            used = None if mem is None else int(mem.used // MIB)
            if pos in self.mem_used and used != self.mem_used[pos]:
                self._next((pos, "processes"))  # memory moved: a job came or went
            self.mem_used[pos] = used
        else:
            procs = self.caller.query(self.gpu, "nvmlDeviceGetComputeRunningProcesses", handle, where=where)
            self.procs[pos] = None if procs is None else list(procs)

    def _next(self, turn: Turn) -> None:
        self.turns.remove(turn)
        self.turns.appendleft(turn)

    def processes(self) -> List[Any]:
        """NVML's process entries of every instance, as last read."""
        return [p for procs in self.procs.values() if procs for p in procs]

    def sample(self, known_pids: Any) -> List[Dict[str, Any]]:
        """Each instance's use as last read; pids only of processes the sample
        still lists (one that exited since its instance was read is gone)."""
        out = []
        for pos, facts in enumerate(self.layout):
            procs = self.procs.get(pos)
            pids = None if procs is None else [int(p.pid) for p in procs if int(p.pid) in known_pids]
            out.append({"index": facts["index"], "mem_used_mib": self.mem_used.get(pos), "pids": pids})
        return out
