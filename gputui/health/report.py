"""The incident report: the alerts, then the affected hosts' GPUs and processes, in Markdown.

Written to be pasted into a ticket as it is: a table of alerts (worst
first, with what to do and the values behind each), then for every host
with an alert its GPU table and the processes that run there, with users
and jobs, so whoever picks the ticket up knows whom a drain or reset hits.
The dashboard's triage screen and ``gputui snapshot --format markdown``
both print it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence

from gputui.fleet.allocation import DEFAULT_IDLE_HOLDING_S, gpu_allocation, ledger_of, state_word
from gputui.fleet.store import FleetStore, HostRecord
from gputui.frames import ProcessInfo
from gputui.health.model import Alert, Severity
from gputui.health.words import clock_words, plural
from gputui.render import age_words, fmt, throttle_words
from gputui.slurm.model import SlurmView


def affected_processes(store: FleetStore, alert: Alert) -> list[tuple[int, ProcessInfo]]:
    """(GPU index, process) pairs an alert touches: those on its GPU, or every one on its host."""
    record = store.hosts.get(alert.host)
    if record is None:
        return []
    return [(g.index, p) for g in record.gpus() if alert.gpu is None or g.index == alert.gpu for p in g.processes]


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def summary_line(store: FleetStore, alerts: Sequence[Alert]) -> str:
    counts = Counter(a.severity for a in alerts)
    hosts = {a.host for a in alerts}
    no_data = sum(1 for r in store.hosts.values() if not r.has_sample)
    parts = [f"{counts.get(s, 0)} {s.word}" for s in sorted(Severity, reverse=True)]
    line = f"{', '.join(parts)} on {len(hosts)} of {plural(len(store.hosts), 'host')}"
    return line + (f"; {no_data} without data" if no_data else "")


def alerts_markdown(alerts: Sequence[Alert], now: float, remarks: Mapping[str, str] | None = None) -> list[str]:
    """``remarks``: an operator's word on an alert, by key, shown with its title
    (whoever reads the report must see who is already on it)."""
    said = remarks or {}
    if not alerts:
        return ["No active alerts.", ""]
    out = ["| Severity | Where | Alert | Since | What to do | Evidence |", "|---|---|---|---|---|---|"]
    for a in alerts:
        severity = f"**{a.severity.word}**" if a.severity is Severity.CRITICAL else a.severity.word
        evidence = "; ".join(f"{k}: {v}" for k, v in a.evidence.items())
        out.append(
            f"| {severity} | {cell(a.where)} | {cell(a.title + (f' ({said[a.key]})' if a.key in said else ''))} "
            f"| {cell(clock_words(a.since, now))} "
            f"| {cell(a.advice)} | {cell(evidence)} |"
        )
    return [*out, ""]


def host_markdown(
    record: HostRecord,
    mono_now: float,
    alerts: Sequence[Alert],
    with_processes: bool,
    idle_holding_s: float = DEFAULT_IDLE_HOLDING_S,
    slurm: SlurmView | None = None,
) -> list[str]:
    """One host: heading with its state, its alerts' count, its GPU table and (optionally) its processes;
    ``slurm``: the site's Slurm, for the node's state and the job on each GPU."""
    state = record.state(mono_now).value
    age = record.age_s(mono_now)
    head = f"## {record.name} ({state})"
    out = [head, ""]
    facts = [] if age is None else [f"data {age_words(age)} old"]
    if record.hello:
        facts += [f"driver {fmt(record.hello.driver_version)}", record.hello.source]
    if alerts:
        counts = Counter(a.severity for a in alerts)
        facts.append("alerts: " + ", ".join(f"{counts[s]} {s.word}" for s in sorted(Severity, reverse=True) if counts[s]))
    node = ledger_of(record).node
    if node is not None:
        facts.append(f"node {node.state}" + (f": {cell(node.reason)}" if node.reason else ""))
    slurm_node = slurm.node(record.name) if slurm is not None else None
    if slurm_node is not None:
        facts.append(f"Slurm {cell(slurm_node.words())}")
    if facts:
        out += [", ".join(facts), ""]
    if record.error:
        out += [f"> {cell(record.error)}", ""]
    if record.gpus():
        out += gpu_table(record, idle_holding_s, slurm)
    if with_processes:
        out += process_table(record)
    return out


def gpu_table(record: HostRecord, idle_holding_s: float = DEFAULT_IDLE_HOLDING_S, slurm: SlurmView | None = None) -> list[str]:
    """The host's GPUs, with each one's state as the allocation tab judges it (free, busy, reserved, drained...)."""
    out = [
        "| GPU | Name | Util | Memory (MiB) | Temp | Power (W) | Throttle | Processes | State |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ledger = ledger_of(record)
    for g in record.gpus():
        static = record.static(g.index)
        name = fmt(static.name if static else None)
        if g.lost:
            out.append(f"| {g.index} | {name} | **lost** | | | | | | lost |")
            continue
        word = state_word(gpu_allocation(record, g, ledger, idle_holding_s))
        job = slurm.job_on(record.name, g.index) if slurm is not None else None
        if job is not None:
            word += f", {cell(job.label())}"
        procs = ", ".join(f"{p.pid} ({fmt(p.user)})" for p in g.processes) or "-"
        out.append(
            f"| {g.index} | {name} | {fmt(g.util_pct, '{}%')} | {fmt(g.mem_used_mib)} / {fmt(g.mem_total_mib)} "
            f"| {fmt(g.temp_c, '{} C')} | {fmt(g.power_w, '{:.0f}')} / {fmt(g.power_limit_w, '{:.0f}')} "
            f"| {throttle_words(g.throttle)} | {procs} | {word} |"
        )
    return [*out, ""]


def process_table(record: HostRecord) -> list[str]:
    procs = [(g.index, p) for g in record.gpus() for p in g.processes]
    if not procs:
        return ["No processes on its GPUs.", ""]
    out = ["| GPU | PID | User | GPU memory | Started | Job | Command |", "|---|---|---|---|---|---|---|"]
    for index, p in procs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.started_at)) if p.started_at is not None else "N/A"
        job = f"slurm {p.slurm_job}" if p.slurm_job else (f"container {p.container}" if p.container else "-")
        out.append(
            f"| {index} | {p.pid} | {cell(fmt(p.user))} | {fmt(p.gpu_mem_mib, '{:,} MiB')} | {started} | {cell(job)} "
            f"| `{cell(fmt(p.command))[:120]}` |"
        )
    return [*out, ""]


def markdown_report(
    store: FleetStore,
    alerts: Sequence[Alert],
    now: float,
    *,
    every_host: bool = False,
    title: str = "GPU incident report",
    remarks: Mapping[str, str] | None = None,
    idle_holding_s: float = DEFAULT_IDLE_HOLDING_S,
) -> str:
    """The report; ``now`` is the wall clock. Affected hosts come first, worst first, with
    their processes; other hosts get their GPU table (``every_host``) or a line each."""
    mono_now = store.clock()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now))
    out = [f"# {title}, {stamp}", "", summary_line(store, alerts), "", "## Alerts", ""]
    out += alerts_markdown(alerts, now, remarks)
    by_host: dict[str, list[Alert]] = {}
    for a in alerts:  # worst first, so hosts come in the order of their worst alert
        by_host.setdefault(a.host, []).append(a)
    for name, host_alerts in by_host.items():
        record = store.hosts.get(name)
        if record is not None:
            out += host_markdown(record, mono_now, host_alerts, True, idle_holding_s, store.slurm)
    others = [r for name, r in store.hosts.items() if name not in by_host]
    if every_host:
        for record in others:
            out += host_markdown(record, mono_now, (), False, idle_holding_s, store.slurm)
    elif others:
        words = [f"{r.name} ({r.state(mono_now).value}, {plural(len(r.gpus()), 'GPU')})" for r in others]
        out += ["## Hosts without alerts", "", ", ".join(words), ""]
    return "\n".join(out)
