"""A GPU's MIG instances as one list: the hello's layout joined with the
sample's use, for the panels and the snapshot alike.

The hello says what the instances are (profile, size, UUID), a sample what
they hold; neither alone answers "which instance is free". An instance is
busy when it runs a process or holds memory, as a whole GPU is.
"""

from __future__ import annotations

from dataclasses import dataclass

from gputui.fleet.allocation import FREE_MEM_MIB
from gputui.fleet.store import HostRecord
from gputui.frames import GpuSample


@dataclass(frozen=True)
class MigInstance:
    gpu: int
    index: int  # NVML's MIG device index on its GPU
    profile: str | None
    uuid: str | None
    gpu_instance_id: int | None
    compute_instance_id: int | None
    mem_total_mib: int | None
    mem_used_mib: int | None
    pids: tuple[int, ...] | None  # None: not read (yet)

    @property
    def label(self) -> str:
        """How the screen names it: its profile, or its index when the profile is unknown."""
        return self.profile or f"mig {self.index}"

    @property
    def busy(self) -> bool:
        return bool(self.pids) or (self.mem_used_mib or 0) >= FREE_MEM_MIB


def mig_instances(record: HostRecord, g: GpuSample) -> list[MigInstance]:
    """The GPU's instances in NVML's order; empty for a GPU not in MIG mode."""
    static = record.static(g.index)
    layout = static.mig_devices if static is not None else None
    if not layout or g.lost:
        return []
    use = {u.index: u for u in g.mig or []}
    out = []
    for d in layout:
        u = use.get(d.index)
        out.append(
            MigInstance(
                gpu=g.index,
                index=d.index,
                profile=d.profile,
                uuid=d.uuid,
                gpu_instance_id=d.gpu_instance_id,
                compute_instance_id=d.compute_instance_id,
                mem_total_mib=d.mem_total_mib,
                mem_used_mib=u.mem_used_mib if u is not None else None,
                pids=tuple(u.pids) if u is not None and u.pids is not None else None,
            )
        )
    return out


def instance_of(instances: list[MigInstance], pid: int) -> MigInstance | None:
    """The instance a process runs on, as far as the last reads tell."""
    for m in instances:
        if m.pids and pid in m.pids:
            return m
    return None
