"""Builds the agent's frames from NVML: one hello, then samples.

Kept apart from the process loop in ``main`` so that an in-process demo and
the benchmark can drive exactly the code a remote host runs. XIDs reach a
sample's ``events`` from two places: the kernel log read once at start (the
first sample carries what happened before the agent ran) and NVML's event
API while it runs (:mod:`gputui.agent.xid_events`).
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from gputui.agent import AGENT_VERSION
from gputui.agent.gpu_reader import GpuReader
from gputui.agent.kernel_log import parse_xids, to_events
from gputui.agent.nvml_calls import NvmlCaller, text
from gputui.agent.procfs import ProcReader
from gputui.agent.xid_events import ERROR_KEY, XidWatcher
from gputui.protocol import PROTOCOL_VERSION

Frame = Dict[str, Any]
Describe = Callable[[int, float], Optional[Dict[str, Any]]]
KernelLog = Callable[[], Tuple[List[str], Optional[float]]]
EVENT_MODES = ("thread", "inline", "off")


class Sampler:
    """NVML (real or simulated) in, frame dictionaries out."""

    def __init__(
        self,
        nvml: Any,
        host: Optional[str] = None,
        source: str = "nvml",
        describe: Optional[Describe] = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        ledger: Optional[Callable[[], Optional[Dict[str, Any]]]] = None,
        events: str = "inline",
        kernel_log: Optional[KernelLog] = None,
    ) -> None:
        """``ledger`` gives the summary of this host's ledger (``LedgerView.summary``):
        it goes in each sample while not empty, so the dashboard shows holds and drains.

        ``events``: XIDs from NVML's event API, waited for in a ``thread`` (the
        agent), asked for once a sample without waiting (``inline``: hundreds of
        samplers in one process), or ``off``. ``kernel_log`` gives the kernel
        log's lines and the boot time, read once by :meth:`hello`; by default
        the simulator's own log when ``nvml`` is one, else nothing (reading the
        host's log is the agent's choice, not every sampler's)."""
        if events not in EVENT_MODES:
            raise ValueError("events must be one of %s" % ", ".join(EVENT_MODES))
        self.caller = NvmlCaller(nvml)
        self.host = host or socket.gethostname()
        self.source = source
        self.clock = clock
        self.wall = wall
        self.procs = ProcReader()
        self.describe: Describe = describe or self.procs.facts
        self.readers: List[GpuReader] = []
        self.seq = 0
        self.ledger = ledger
        self.ledger_version: Optional[int] = None
        self.events_mode = events
        self.kernel_log: Optional[KernelLog] = kernel_log or getattr(nvml, "kernel_log", None)
        self.xids: Optional[XidWatcher] = None
        self.early_events: List[Dict[str, Any]] = []

    def hello(self, interval_s: float) -> Frame:
        """Initialise NVML and read every static fact once."""
        c = self.caller
        c.call("nvmlInit")
        driver = _optional(c, "nvmlSystemGetDriverVersion")
        nvml_version = _optional(c, "nvmlSystemGetNVMLVersion")
        cuda = _optional(c, "nvmlSystemGetCudaDriverVersion")
        count = c.call("nvmlDeviceGetCount")
        now = self.clock()
        self.readers = [GpuReader(c, i) for i in range(count)]
        gpus = [r.read_static(now) for r in self.readers]
        self._start_events(gpus)
        return {
            "type": "hello",
            "v": PROTOCOL_VERSION,
            "t": round(self.wall(), 3),
            "agent_version": AGENT_VERSION,
            "host": self.host,
            "source": self.source,
            "driver_version": text(driver),
            "nvml_version": text(nvml_version),
            "cuda_driver_version": _cuda(cuda),
            "interval_s": interval_s,
            "gpus": gpus,
            "nvml_calls": c.calls,
        }

    def sample(self) -> Frame:
        started = self.clock()
        before = self.caller.calls
        seen: Dict[int, Any] = {}

        def describe_once(pid: int, now: float) -> Any:
            # A process on several GPUs is read once a sample (and its CPU % is right).
            if pid not in seen:
                seen[pid] = self.describe(pid, now)
            return seen[pid]

        summary = None
        if self.ledger is not None:
            # Read before the GPUs, so a drain's compute mode is read in the
            # same sample that first shows the drain.
            summary = self.ledger()
            self._follow_ledger(summary)
        gpus = [r.sample(self.seq, started, describe_once) for r in self.readers]
        if self.describe == self.procs.facts:
            self.procs.forget_except({p["pid"] for g in gpus for p in g["processes"]})
        frame = {
            "type": "sample",
            "v": PROTOCOL_VERSION,
            "t": round(self.wall(), 3),
            "seq": self.seq,
            "gpus": gpus,
            "nvml_calls": self.caller.calls - before,
            "sample_ms": round((self.clock() - started) * 1000.0, 2),
        }
        if summary:
            frame["ledger"] = summary
        events = self._events()
        if events:
            frame["events"] = events
        self._event_errors(gpus)
        self.seq += 1
        return frame

    def _start_events(self, gpus: List[Dict[str, Any]]) -> None:
        """Read the kernel log's XIDs and start listening for new ones."""
        if self.kernel_log is not None:
            try:
                lines, boot = self.kernel_log()
            except Exception:  # a log we cannot read is no reason not to sample
                lines, boot = [], None
            now = self.wall()
            buses = [g.get("pci_bus_id") for g in gpus]
            self.early_events = to_events(parse_xids(lines, boot, now), buses, now)
        if self.events_mode == "off" or self.xids is not None:
            return
        self.xids = XidWatcher(self.caller.nvml, self.wall)
        self.xids.open([(r.index, r.handle) for r in self.readers if r.handle is not None and not r.lost])
        if self.events_mode == "thread":
            self.xids.start()

    def _events(self) -> List[Dict[str, Any]]:
        events, self.early_events = self.early_events, []
        if self.xids is not None:
            self.xids.pump()
            events.extend(self.xids.drain())
        return events

    def _event_errors(self, gpus: List[Dict[str, Any]]) -> None:
        """A GPU whose XIDs cannot be heard now says so in its ``field_errors``
        (``xid_events``), so the dashboard shows it; a lost GPU already says more."""
        if self.xids is None:
            return
        for index, message in self.xids.errors().items():
            if 0 <= index < len(gpus) and not gpus[index].get("lost"):
                errors = gpus[index].get("field_errors") or {}
                errors[ERROR_KEY] = message
                gpus[index]["field_errors"] = errors

    def _follow_ledger(self, summary: Optional[Dict[str, Any]]) -> None:
        """A drain or undrain changes compute modes: read them in this sample
        instead of waiting for their slow turn in the rotation."""
        version = summary.get("version") if summary else None
        if version != self.ledger_version:
            self.ledger_version = version
            for reader in self.readers:
                reader.refresh_soon("compute_mode", self.seq)

    def close(self) -> None:
        if self.xids is not None:
            self.xids.close()
        try:
            self.caller.call("nvmlShutdown")
        except self.caller.nvml.NVMLError:
            pass


def _optional(caller: NvmlCaller, name: str) -> Any:
    try:
        return caller.call(name)
    except caller.nvml.NVMLError:
        return None


def _cuda(version: Any) -> Optional[str]:
    if not isinstance(version, int) or version <= 0:
        return None
    return "%d.%d" % (version // 1000, (version % 1000) // 10)


def error_frame(message: str, fatal: bool = False, wall: Callable[[], float] = time.time) -> Frame:
    return {"type": "error", "v": PROTOCOL_VERSION, "t": round(wall(), 3), "message": message, "fatal": fatal}
