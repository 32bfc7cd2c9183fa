"""The wire protocol as the dashboard reads it: validated frames.

Every source (local child, SSH, demo, replay) hands lines to
:func:`parse_frame`, so a malformed or oversized frame is caught in one
place and becomes a :class:`FrameError` for that host alone. Unknown keys
are ignored so that a newer agent can add fields without breaking an older
dashboard; a different protocol version is refused plainly. The version and
the line limit are in gputui/protocol.py, which the agent imports too.
"""

from __future__ import annotations

from typing import Annotated, Literal, Required

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from gputui.protocol import MAX_FRAME_BYTES, PROTOCOL_VERSION


class FrameError(ValueError):
    """A line from a host that is not a frame this dashboard understands."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProcessInfo(_Model):
    pid: int
    ppid: int | None = None  # its parent: the launcher (torchrun, slurmstepd, a container's shim) of a job's ranks
    parent_command: str | None = None  # the parent's name, as /proc/PPID/comm gives it
    user: str | None = None
    command: str | None = None
    gpu_mem_mib: int | None = None
    sm_pct: int | None = None  # its share of the GPU's SMs (NVML's process utilisation samples)
    mem_bw_pct: int | None = None  # its share of memory bandwidth
    cpu_pct: float | None = None
    rss_mib: float | None = None
    started_at: float | None = None
    slurm_job: str | None = None
    container: str | None = None


class Ecc(_Model):
    volatile_corrected: int | None = None
    volatile_uncorrected: int | None = None
    aggregate_corrected: int | None = None
    aggregate_uncorrected: int | None = None


class RetiredPages(_Model):
    single_bit: int | None = None
    double_bit: int | None = None
    pending: bool | None = None


class RemappedRows(_Model):
    correctable: int | None = None
    uncorrectable: int | None = None
    pending: bool | None = None
    failure: bool | None = None


class NvlinkErrors(_Model):
    """NVLink error counters, summed over the GPU's links (None: not read or no NVLink)."""

    crc_flit: int | None = None
    crc_data: int | None = None
    replay: int | None = None
    recovery: int | None = None


class XidEvent(_Model):
    """One XID, reported once: ``nvml`` from the event API while the agent
    runs, ``kernel`` from the kernel log (events from before the agent started)."""

    xid: int
    gpu: int | None = None  # index; None when the bus id matched no GPU
    t: float  # wall-clock time it happened (kernel: as well as the log tells)
    source: Literal["nvml", "kernel"] = "nvml"
    pid: int | None = None
    text: str | None = None  # the driver's words, for the kernel log


class MigDevice(_Model):
    """One MIG device of a GPU in MIG mode (a compute instance within a GPU
    instance), as the hello lists it: its layout, fixed until re-partitioned."""

    index: int  # NVML's MIG device index on its GPU
    uuid: str | None = None  # MIG-...: what CUDA_VISIBLE_DEVICES names
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None
    profile: str | None = None  # "3g.40gb"
    mem_total_mib: int | None = None


class MigUse(_Model):
    """What one MIG device holds, as a sample carries it (as last read: the
    instances are read in turns, see gputui/agent/mig.py)."""

    index: int  # as in MigDevice
    mem_used_mib: int | None = None
    pids: list[int] | None = None  # its processes (their facts are in the GPU's processes)


class GpuStatic(_Model):
    index: int
    uuid: str | None = None
    name: str | None = None
    serial: str | None = None
    pci_bus_id: str | None = None
    mem_total_mib: int | None = None
    power_min_w: float | None = None
    power_max_w: float | None = None
    power_default_w: float | None = None
    temp_slowdown_c: int | None = None
    temp_shutdown_c: int | None = None
    # Where the two come from when not from NVML (nvidia-smi's T.Limit, the
    # config, a model's default), for an alert to say how sure it is.
    temp_limits_from: str | None = None
    mig_enabled: bool | None = None
    mig_devices: list[MigDevice] | None = None  # in MIG mode: its instances
    lost: bool = False
    error: str | None = None


class GpuSample(_Model):
    index: int
    lost: bool = False
    util_pct: int | None = None
    mem_util_pct: int | None = None
    mem_used_mib: int | None = None
    mem_total_mib: int | None = None
    temp_c: int | None = None
    mem_temp_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    fan_pct: int | None = None
    pstate: str | None = None
    throttle: list[str] | None = None
    ecc: Ecc | None = None
    retired_pages: RetiredPages | None = None
    remapped_rows: RemappedRows | None = None
    pcie_rx_kib_s: float | None = None
    pcie_tx_kib_s: float | None = None
    compute_mode: str | None = None
    persistence_mode: bool | None = None
    pcie_replays: int | None = None  # PCIe replay counter, cumulative
    nvlink: NvlinkErrors | None = None
    throttle_ms: dict[str, float] | None = None  # ms spent in each clock-event reason during the last interval
    field_errors: dict[str, str] | None = None  # field -> NVML error, for reads that failed (not "not supported")
    processes: list[ProcessInfo] = Field(default_factory=list)
    # Who holds it where the source can list no processes: a Kubernetes pod (namespace/pod/container)
    # as dcgm-exporter's labels name it, read through Prometheus.
    holder: str | None = None
    mig: list[MigUse] | None = None  # in MIG mode: each instance's memory and processes

    @property
    def mem_pct(self) -> float | None:
        if self.mem_used_mib is None or not self.mem_total_mib:
            return None
        return 100.0 * self.mem_used_mib / self.mem_total_mib


class Hello(_Model):
    type: Literal["hello"]
    v: int
    t: float
    agent_version: str
    host: str
    source: str = "nvml"
    driver_version: str | None = None
    nvml_version: str | None = None
    cuda_driver_version: str | None = None
    interval_s: float = 1.0
    gpus: list[GpuStatic]
    missing_fields: list[str] = Field(default_factory=list)  # what the host's nvidia-smi could not be asked for
    changes: int | None = None  # samples come as changes (gputui/protocol.py, CHANGES_VERSION)
    keyframe_every: int | None = None


class LedgerGpu(_Model):
    """One GPU's hold in the host's ledger (docs/actions.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    state: str
    holder: str | None = Field(default=None, alias="for")  # reserve: who it is held for
    by: str | None = None
    until: float | None = None
    reason: str | None = None
    since: float | None = None
    backend: str | None = None
    uuid: str | None = None
    ticket: str | None = None  # sent by agents since the snapshot's allocation; None from older ones


class LedgerNode(_Model):
    state: str
    by: str | None = None
    reason: str | None = None
    since: float | None = None
    backend: str | None = None
    ticket: str | None = None


class LedgerSummary(_Model):
    """The host's ledger as a sample carries it: holds by GPU index, the node's
    state, or ``error`` when the agent cannot read its ledger."""

    version: int | None = None
    gpus: dict[str, LedgerGpu] = Field(default_factory=dict)
    node: LedgerNode | None = None
    error: str | None = None


class Sample(_Model):
    type: Literal["sample"]
    v: int
    t: float
    seq: int
    gpus: list[GpuSample]
    nvml_calls: int | None = None
    sample_ms: float | None = None
    ledger: LedgerSummary | None = None
    events: list[XidEvent] = Field(default_factory=list)  # XIDs since the previous sample
    key: bool | None = None  # True: a keyframe of a stream of changes (None: an agent that sends whole samples)


class ProcessPatch(TypedDict, total=False):
    """A process's changed facts in a delta: ``pid`` and what moved. A dictionary of only
    the keys sent, not a model with every field filled: that is most of what a delta saves."""

    pid: Required[int]
    ppid: int | None
    parent_command: str | None
    user: str | None
    command: str | None
    gpu_mem_mib: int | None
    sm_pct: int | None
    mem_bw_pct: int | None
    cpu_pct: float | None
    rss_mib: float | None
    started_at: float | None
    slurm_job: str | None
    container: str | None


class GpuPatch(TypedDict, total=False):
    """A GPU's changes in a delta: each key sent replaces the last value (null: now unknown)."""

    index: Required[int]
    lost: bool | None
    util_pct: int | None
    mem_util_pct: int | None
    mem_used_mib: int | None
    mem_total_mib: int | None
    temp_c: int | None
    mem_temp_c: int | None
    power_w: float | None
    power_limit_w: float | None
    sm_clock_mhz: int | None
    mem_clock_mhz: int | None
    fan_pct: int | None
    pstate: str | None
    throttle: list[str] | None
    ecc: Ecc | None
    retired_pages: RetiredPages | None
    remapped_rows: RemappedRows | None
    pcie_rx_kib_s: float | None
    pcie_tx_kib_s: float | None
    compute_mode: str | None
    persistence_mode: bool | None
    pcie_replays: int | None
    nvlink: NvlinkErrors | None
    throttle_ms: dict[str, float] | None
    field_errors: dict[str, str] | None
    processes: list[ProcessInfo] | None  # the whole list, when its pids changed
    process_changes: list[ProcessPatch]  # else each changed process
    holder: str | None
    mig: list[MigUse] | None


class Delta(_Model):
    """A sample as changes since the previous one (gputui/protocol.py): only what
    moved is validated, and :class:`FrameDecoder` makes it a whole :class:`Sample`."""

    type: Literal["delta"]
    v: int
    t: float
    seq: int
    gpus: list[GpuPatch] = Field(default_factory=list)
    nvml_calls: int | None = None
    sample_ms: float | None = None
    ledger: LedgerSummary | None = None
    events: list[XidEvent] = Field(default_factory=list)


class ErrorFrame(_Model):
    type: Literal["error"]
    v: int
    t: float
    message: str
    fatal: bool = False


class Result(_Model):
    type: Literal["result"]
    v: int
    id: int | str | None = None
    ok: bool
    error: str | None = None


Frame = Annotated[Hello | Sample | ErrorFrame | Result, Field(discriminator="type")]
WireFrame = Annotated[Hello | Sample | Delta | ErrorFrame | Result, Field(discriminator="type")]
_FRAME: TypeAdapter[Hello | Sample | Delta | ErrorFrame | Result] = TypeAdapter(WireFrame)


def parse_frame(line: bytes | str) -> Hello | Sample | ErrorFrame | Result:
    """One NDJSON line to a whole frame, or :class:`FrameError` saying what is wrong
    (a delta among them: changes mean nothing without the stream's :class:`FrameDecoder`)."""
    frame = parse_line(line)
    if isinstance(frame, Delta):
        raise FrameError(f"changes of sample {frame.seq} where whole frames were expected")
    return frame


def parse_line(line: bytes | str) -> Hello | Sample | Delta | ErrorFrame | Result:
    """One NDJSON line to a frame of any kind, a delta included, or :class:`FrameError`."""
    if len(line) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(line)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    try:
        frame = _FRAME.validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FrameError(f"malformed frame: {where + ': ' if where else ''}{first['msg']}") from None
    if frame.v != PROTOCOL_VERSION:
        raise FrameError(f"agent speaks protocol {frame.v}, this dashboard speaks {PROTOCOL_VERSION}")
    return frame
