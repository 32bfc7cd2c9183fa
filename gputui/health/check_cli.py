"""``gputui check``: the health rules once, for scripts, cron and monitoring.

It reads the fleet the way ``gputui snapshot`` does (the config's hosts, or
a simulated fleet with ``--demo``), waits for two samples per host (or the
timeout) so that rules needing two looks work, evaluates the engine once
with no hold time, prints the alerts and exits with the Nagios plugin
convention: 0 ok, 1 warning, 2 critical, 3 unknown. Unknown means a host
could not be reached or sent no data (or the check itself failed) and
nothing is critical: a critical problem seen elsewhere is still reported
as critical, since it is certain while the silent host is only a doubt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gputui.health.engine import HealthEngine
from gputui.health.model import Alert, Severity
from gputui.health.words import clock_words, plural

if TYPE_CHECKING:
    from gputui.fleet.store import FleetStore
    from gputui.sources.fleet import Fleet

SCHEMA = "gputui.check/1"
SAMPLES = 2


class Status(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Outcome:
    """What one check found: the alerts, the hosts that gave no data, and the verdict."""

    alerts: list[Alert]
    hosts: int
    unreachable: list[str]
    checked_at: float
    fleet: list[dict[str, Any]] = field(default_factory=list)  # fleet_json: each host's ledger and GPUs' allocation

    @property
    def counts(self) -> dict[Severity, int]:
        return {s: sum(1 for a in self.alerts if a.severity is s) for s in Severity}

    @property
    def silent(self) -> list[str]:
        """Hosts that gave no data and have no alert saying why (a down host has one)."""
        alerted = {a.host for a in self.alerts} | {h for a in self.alerts for h in a.behind}
        return [name for name in self.unreachable if name not in alerted]

    @property
    def status(self) -> Status:
        counts = self.counts
        if counts[Severity.CRITICAL]:
            return Status.CRITICAL
        if self.unreachable:
            return Status.UNKNOWN
        return Status.WARNING if counts[Severity.WARNING] else Status.OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``check`` subcommand; the caller adds the demo's arguments (--hosts, --scenario...)."""
    from gputui.cli_args import positive_seconds_arg

    p: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="run the health rules once and print the alerts; exit 0 ok, 1 warning, 2 critical, 3 unknown",
        description="Run the health rules once against the config's hosts (or a simulated fleet) "
        "and exit 0 ok, 1 warning, 2 critical, 3 unknown (a host unreachable and nothing critical, "
        "a usage error, or the check itself failed).",
        usage_status=int(Status.UNKNOWN),  # gputui.cli.CommandParser: a usage error must not page as CRITICAL (2)
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--demo", action="store_true", help="a simulated fleet instead of the config's hosts")
    where.add_argument("--config", dest="check_file", type=Path, metavar="FILE", help="config file with the hosts and thresholds")
    p.add_argument("--format", dest="check_format", choices=("table", "json", "nagios"), default="table")
    p.add_argument("--timeout", type=positive_seconds_arg, default=15.0, help="seconds to wait for every host (default 15)")
    p.add_argument(
        "--notify",
        action="store_true",
        help="send the config's [notify] notifications for critical alerts new since the last --notify run",
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Check once and print; the exit status is the verdict."""
    from gputui.config import ConfigError

    try:
        fleet = _open(args)
    except (ValueError, ConfigError) as exc:
        return _unknown(args.check_format, str(exc))
    thresholds, store, notify = fleet.config.thresholds, fleet.store, fleet.config.notify
    if args.notify and not notify.active:
        return _unknown(args.check_format, "--notify: the config has no [notify] command or webhook")
    engine = HealthEngine(thresholds, hold_s=0.0, clear_s=0.0)

    async def look() -> None:
        from gputui.snapshot import collect

        store.listeners.append(lambda: engine.observe(store))  # every sample, not only the last
        try:
            await collect(fleet.sources, store, args.timeout, samples=SAMPLES, cluster=fleet.slurm)
        finally:
            await fleet.close()

    try:
        asyncio.run(look())
        alerts = engine.evaluate(store)
    except Exception as exc:  # a monitoring plugin that crashes must still say UNKNOWN, not page as OK
        return _unknown(args.check_format, f"check failed: {type(exc).__name__}: {exc}")
    unreachable = [name for name, r in store.hosts.items() if not r.has_sample]
    fleet_state = fleet_json(store, thresholds.idle_holding_minutes * 60)
    outcome = Outcome(alerts, len(store.hosts), unreachable, time.time(), fleet_state)
    if args.notify:
        from gputui.health.check_notify import notify_once

        for problem in notify_once(notify, alerts):  # said, but the verdict stays the fleet's
            print(f"gputui check: notification not sent: {problem}", file=sys.stderr)
    return _say(render(outcome, args.check_format), int(outcome.status))


def _say(text: str, status: int, err: bool = False) -> int:
    """Print the result and return ``status``; UNKNOWN (one line on stderr) if it cannot be written.

    A reader that has gone (BrokenPipeError) is left to the caller, which exits as SIGPIPE would.
    """
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        # What is still buffered would fail again at exit, with a traceback: send it nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        print(f"gputui check: cannot write the result: {exc.strerror or exc}", file=sys.stderr)
        return int(Status.UNKNOWN)
    return status


def _open(args: argparse.Namespace) -> Fleet:
    """The fleet to check: the demo's (with the config's thresholds and [notify], if one is named), or
    the config's hosts; ValueError or ConfigError says why not."""
    from gputui.cli_args import demo_spec, prometheus_url
    from gputui.sources.fleet import open_fleet

    path = args.check_file or args.config
    url = prometheus_url(args, args.check_prometheus)
    fleet = open_fleet(path, demo_spec(args), url)
    if not fleet.sources:  # the config lists none, or its Prometheus could not say (UNKNOWN, with why)
        raise ValueError(fleet.problems[0] if fleet.problems else f"{fleet.path or 'config'}: no hosts to check")
    return fleet


def _unknown(fmt_name: str, message: str) -> int:
    outcome_line = f"GPUTUI UNKNOWN - {message.splitlines()[0] if message else 'no result'}"
    unknown = int(Status.UNKNOWN)
    if fmt_name == "json":
        return _say(json.dumps({"schema": SCHEMA, "status": "unknown", "exit_code": 3, "error": message}, indent=2), unknown)
    if fmt_name == "nagios":
        return _say(outcome_line.replace("|", "/"), unknown)
    return _say(f"gputui check: {message}", unknown, err=True)


# -- output ---------------------------------------------------------------------------
def render(outcome: Outcome, fmt_name: str) -> str:
    if fmt_name == "json":
        return json.dumps(to_json(outcome), indent=2)
    if fmt_name == "nagios":
        return to_nagios(outcome)
    return to_table(outcome)


def headline(outcome: Outcome, info: bool = True) -> str:
    counts = outcome.counts
    words = f"{counts[Severity.CRITICAL]} critical, {counts[Severity.WARNING]} warning"
    if info and counts[Severity.INFO]:
        words += f", {counts[Severity.INFO]} info"
    if outcome.unreachable:
        words += f", {len(outcome.unreachable)} unreachable"
    return words


def to_nagios(outcome: Outcome) -> str:
    """First line: status, summary and performance data; then one line per alert."""
    counts = outcome.counts
    perf = (
        f"critical={counts[Severity.CRITICAL]} warning={counts[Severity.WARNING]} info={counts[Severity.INFO]} "
        f"hosts={outcome.hosts} unreachable={len(outcome.unreachable)}"
    )
    lines = [f"GPUTUI {outcome.status.name} - {headline(outcome, info=False)} | {perf}"]
    for a in outcome.alerts:
        lines.append(f"{a.severity.name} {a.where} {a.rule}: {a.title} - {a.advice}".replace("|", "/"))
    lines += [f"UNKNOWN {name}: no data" for name in outcome.silent]
    return "\n".join(lines)


def to_table(outcome: Outcome) -> str:
    """For a person at a terminal: a summary line, then each alert with what to do and why."""
    lines = [f"gputui check: {outcome.status.name}, {headline(outcome)} ({plural(outcome.hosts, 'host')})"]
    for a in outcome.alerts:
        lines += [
            "",
            f"{a.severity.name:<8}  {a.where:<12}  {a.title}",
            f"{'':<8}  since {clock_words(a.since, outcome.checked_at)}",
            f"{'':<8}  do: {a.advice}",
        ]
        if a.evidence:
            lines.append(f"{'':<8}  evidence: " + "; ".join(f"{k}: {v}" for k, v in a.evidence.items()))
    if outcome.silent:
        lines += ["", f"no data from: {', '.join(outcome.silent)}"]
    return "\n".join(lines)


def fleet_json(store: FleetStore, idle_holding_s: float) -> list[dict[str, Any]]:
    """Every host checked: its state, the node's ledger entry and each GPU's ``allocation``,
    the snapshot's objects from the same code, so that a script paging on an alert can say
    who holds the GPU (or why it is drained) without a second look at the fleet."""
    from gputui.fleet.allocation import allocation_json, ledger_of, node_json
    from gputui.slurm.model import slurm_json

    now = store.clock()
    hosts = []
    for r in store.hosts.values():
        ledger = ledger_of(r)
        gpus = []
        for g in r.gpus():
            static = r.static(g.index)
            uuid = static.uuid if static else None
            gpus.append(
                {"index": g.index, "uuid": uuid, "allocation": allocation_json(r, g, ledger, idle_holding_s, store.slurm)}
            )
        hosts.append(
            {
                "name": r.name,
                "state": r.state(now).value,
                "node": node_json(ledger.node),
                "ledger_error": ledger.error,
                "slurm": slurm_json(store.slurm, r.name),
                "gpus": gpus,
            }
        )
    return hosts


def alert_json(a: Alert, allocations: dict[tuple[str, int], dict[str, Any]] | None = None) -> dict[str, Any]:
    """``allocations``: by (host, GPU index), from fleet_json; a GPU's alert carries its GPU's
    (null for a host's alert, or a GPU the host's sample does not list)."""
    gpu = None if a.gpu is None else (allocations or {}).get((a.host, a.gpu))
    return {
        "key": a.key,
        "rule": a.rule,
        "severity": a.severity.word,
        "host": a.host,
        "gpu": a.gpu,
        "title": a.title,
        "advice": a.advice,
        "since": round(a.since, 3),
        "evidence": dict(a.evidence),
        "behind": list(a.behind),  # a jump host's alert: the hosts cut off behind it
        "allocation": gpu,
    }


def to_json(outcome: Outcome) -> dict[str, Any]:
    counts = outcome.counts
    allocations = {(h["name"], g["index"]): g["allocation"] for h in outcome.fleet for g in h["gpus"]}
    return {
        "schema": SCHEMA,
        "status": outcome.status.name.lower(),
        "exit_code": int(outcome.status),
        "checked_at": round(outcome.checked_at, 3),
        "hosts": outcome.hosts,
        "unreachable": list(outcome.unreachable),
        "counts": {s.word: counts[s] for s in Severity},
        "alerts": [alert_json(a, allocations) for a in outcome.alerts],
        "fleet": outcome.fleet,
    }
