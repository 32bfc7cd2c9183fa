"""``gputui snapshot``: one look at the fleet, printed, without the UI.

It runs the same sources and store as the dashboard, waits until every host
has sent a sample or failed (or the timeout passes), and prints the store as
JSON, a table in the manner of nvidia-smi, or Markdown (the incident report
of :mod:`gputui.health.report`: the alerts first, then each host).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from gputui.config import Thresholds
from gputui.fleet.allocation import (
    DEFAULT_IDLE_HOLDING_S,
    Ledger,
    allocation_json,
    gpu_allocation,
    ledger_of,
    node_json,
    state_word,
)
from gputui.fleet.mig import MigInstance, mig_instances
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.frames import GpuSample
from gputui.render import fmt, throttle_words
from gputui.slurm.model import SlurmView, slurm_json
from gputui.slurm.reader import SlurmReader
from gputui.sources.base import Source

SCHEMA = "gputui.snapshot/1"


async def collect(
    sources: Sequence[Source], store: FleetStore, timeout: float, samples: int = 1, cluster: SlurmReader | None = None
) -> None:
    """Follow every source until each host has sent ``samples`` samples or failed, or ``timeout`` passes.

    ``gputui check`` asks for two: rules on counters that climb need two looks,
    and XIDs from NVML arrive in the samples after the first. ``cluster``: the
    site's Slurm, read once meanwhile (its own timeout bounds it).
    """
    reading = asyncio.ensure_future(cluster.read()) if cluster is not None else None
    try:
        await _follow(sources, store, timeout, samples)
    finally:
        if reading is not None:
            store.set_slurm(await reading)


async def _follow(sources: Sequence[Source], store: FleetStore, timeout: float, samples: int) -> None:
    runner = FleetRunner(sources, store, reconnect=False)  # one look: no retries
    changed = asyncio.Event()
    counts: dict[str, int] = {}
    last: dict[str, int] = {}

    def on_change() -> None:
        for name, r in store.hosts.items():
            if r.has_sample and r.sample_no != last.get(name):
                last[name] = r.sample_no
                counts[name] = counts.get(name, 0) + 1
        changed.set()

    store.listeners.append(on_change)
    runner.start()
    deadline = time.monotonic() + timeout
    try:
        while not all(counts.get(n, 0) >= samples or r.down_since is not None for n, r in store.hosts.items()):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            changed.clear()
            try:
                async with asyncio.timeout(left):
                    await changed.wait()
            except TimeoutError:
                return
    finally:
        store.listeners.remove(on_change)
        looked_at = store.clock()
        await runner.stop()
        # One look is judged as of when it ended: closing the connections (a second or
        # more over SSH) must not turn hosts with a short interval stale before they are printed.
        store.clock = lambda: looked_at


def to_json(store: FleetStore, idle_holding_s: float = DEFAULT_IDLE_HOLDING_S) -> dict[str, Any]:
    now = store.clock()
    hosts = []
    for r in store.hosts.values():
        state = r.state(now)
        age = r.age_s(now)
        ledger = ledger_of(r)
        hosts.append(
            {
                "name": r.name,
                "state": state.value,
                "age_s": None if age is None else round(age, 2),
                "driver_version": r.hello.driver_version if r.hello else None,
                "agent_version": r.hello.agent_version if r.hello else None,
                "source": r.hello.source if r.hello else None,
                "missing_fields": list(r.hello.missing_fields) if r.hello else None,  # what its source cannot say
                "error": r.error,
                "node": node_json(ledger.node),
                "ledger_error": ledger.error,
                "slurm": slurm_json(store.slurm, r.name),
                "gpus": [_gpu_json(r, g, ledger, idle_holding_s, store.slurm) for g in r.gpus()],
            }
        )
    return {"schema": SCHEMA, "taken_at": round(time.time(), 3), "hosts": hosts}


def _gpu_json(
    record: HostRecord, gpu: GpuSample, ledger: Ledger, idle_holding_s: float, slurm: SlurmView | None = None
) -> dict[str, Any]:
    out = gpu.model_dump(mode="json")
    static = record.static(gpu.index)
    out["uuid"] = static.uuid if static else None
    out["name"] = static.name if static else None
    out["pci_bus_id"] = static.pci_bus_id if static else None
    out["temp_slowdown_c"] = static.temp_slowdown_c if static else None
    out["temp_shutdown_c"] = static.temp_shutdown_c if static else None
    out["mig_enabled"] = static.mig_enabled if static else None
    # One list per MIG GPU, layout and use together (the sample's "mig" is the use alone).
    del out["mig"]
    instances = mig_instances(record, gpu)
    out["mig_devices"] = [_mig_json(m) for m in instances] if instances else None
    out["allocation"] = allocation_json(record, gpu, ledger, idle_holding_s, slurm)
    return out


def _mig_json(m: MigInstance) -> dict[str, Any]:
    return {
        "index": m.index,
        "uuid": m.uuid,
        "gpu_instance_id": m.gpu_instance_id,
        "compute_instance_id": m.compute_instance_id,
        "profile": m.profile,
        "mem_used_mib": m.mem_used_mib,
        "mem_total_mib": m.mem_total_mib,
        "pids": None if m.pids is None else list(m.pids),
    }


def to_table(store: FleetStore, idle_holding_s: float = DEFAULT_IDLE_HOLDING_S) -> str:
    now = store.clock()
    out: list[str] = []
    for r in store.hosts.values():
        state = r.state(now)
        age = r.age_s(now)
        ledger = ledger_of(r)
        head = f"{r.name}  {state.value}"
        if age is not None:
            head += f"  data {age:.1f}s old"
        if r.hello:
            head += f"  driver {fmt(r.hello.driver_version)}  {r.hello.source}"
        out.append(head)
        if state is HostState.DOWN or r.error:
            out.append(f"  ! {r.error}")
        if ledger.node is not None:
            out.append(f"  node {ledger.node.state}" + (f": {ledger.node.reason}" if ledger.node.reason else ""))
        out.extend(_slurm_lines(store.slurm, r.name))
        if not r.gpus():
            out.append("")
            continue
        out.append(
            f"  {'GPU':<4}{'Name':<24}{'Util':>6}{'Mem used / total':>20}{'Temp':>6}{'Power / cap':>14}{'Fan':>6}"
            f"  {'State':<13}Throttle"
        )
        for g in r.gpus():
            static = r.static(g.index)
            name = (static.name or "?") if static else "?"
            name = name.replace("NVIDIA ", "")[:22]
            if g.lost:
                out.append(f"  {g.index:<4}{name:<24}  GPU LOST (fallen off the bus) - no data")
                continue
            word = state_word(gpu_allocation(r, g, ledger, idle_holding_s))
            mem = f"{fmt(g.mem_used_mib)} / {fmt(g.mem_total_mib)} MiB"
            power = f"{fmt(g.power_w, '{:.0f}')} / {fmt(g.power_limit_w, '{:.0f}')} W"
            out.append(
                f"  {g.index:<4}{name:<24}{fmt(g.util_pct, '{}%'):>6}{mem:>20}{fmt(g.temp_c, '{}C'):>6}"
                f"{power:>14}{fmt(g.fan_pct, '{}%'):>6}  {word:<13}{throttle_words(g.throttle)}"
            )
        procs = [(g.index, p) for g in r.gpus() for p in g.processes]
        if procs:
            out.append(f"  {'GPU':<4}{'PID':>8}  {'User':<10}{'GPU mem':>10}  Command")
            for index, p in procs:
                out.append(f"  {index:<4}{p.pid:>8}  {fmt(p.user):<10}{fmt(p.gpu_mem_mib, '{} MiB'):>10}  {fmt(p.command)[:60]}")
        out.append("")
    return "\n".join(out)


def _slurm_lines(view: SlurmView | None, host: str) -> list[str]:
    """The node as Slurm has it, its reservations and the jobs on its GPUs."""
    if view is None:
        return []
    node = view.node(host)
    lines = [f"  slurm {node.words()}"] if node is not None else []
    lines += [f"  slurm {r.words()}" for r in view.reservations_on(host)]
    now, name = time.time(), view.node_name(host)
    lines += [f"  slurm GPU {','.join(map(str, j.gpus[name]))}: {j.words(now)}" for j in view.jobs_on(host)]
    if view.error:
        lines.append(f"  ! slurm: {view.error}")
    return lines


def to_markdown(store: FleetStore, thresholds: Thresholds | None = None) -> str:
    """The incident report over the whole fleet: the alerts of one evaluation (no hold
    time: this is one look), then every host's GPUs, affected hosts first with processes."""
    from gputui.health.engine import HealthEngine
    from gputui.health.report import markdown_report

    alerts = HealthEngine(thresholds, hold_s=0.0, clear_s=0.0).evaluate(store)
    idle_holding_s = thresholds.idle_holding_minutes * 60 if thresholds is not None else DEFAULT_IDLE_HOLDING_S
    return markdown_report(store, alerts, time.time(), every_host=True, title="GPU fleet snapshot", idle_holding_s=idle_holding_s)


def render(store: FleetStore, fmt_name: str, thresholds: Thresholds | None = None) -> str:
    idle_holding_s = thresholds.idle_holding_minutes * 60 if thresholds is not None else DEFAULT_IDLE_HOLDING_S
    if fmt_name == "json":
        return json.dumps(to_json(store, idle_holding_s), indent=2)
    if fmt_name == "markdown":
        return to_markdown(store, thresholds)
    return to_table(store, idle_holding_s)
