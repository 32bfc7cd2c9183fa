"""Which hosts the overview shows, in what order, under which headings.

Pure functions over the store, so that the filter, the sort orders and the
grouping can be tested without a screen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gputui.fleet.store import FleetStore, HostRecord, HostState
from gputui.frame_columns import GpuColumns
from gputui.health.model import Severity

SORTS = ("name", "state", "util", "temp", "mem")
GROUPINGS = ("none", "group", "tag")
# "Worst first" interleaves what the link says and what the alerts say: a live
# host with a critical alert is worse than a stale one, a warning than a host
# still connecting.
STATE_RANK = {HostState.DOWN: 0, HostState.STALE: 2, HostState.CONNECTING: 4, HostState.LIVE: 5}
ALERT_RANK = {Severity.CRITICAL: 1, Severity.WARNING: 3, Severity.INFO: 5}


@dataclass(frozen=True)
class Row:
    """A host line, or a heading line when ``host`` is None."""

    title: str
    host: str | None = None
    count: int = 0


def matches(record: HostRecord, needle: str) -> bool:
    """Host name, tag, group, GPU model or a process user contains ``needle``."""
    if not needle:
        return True
    n = needle.lower()
    if n in record.name.lower() or any(n in t.lower() for t in record.tags) or n in (record.group or "").lower():
        return True
    if record.hello and any(n in (g.name or "").lower() for g in record.hello.gpus):
        return True
    return any(n in (p.user or "").lower() for g in record.gpus() for p in g.processes)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else -1.0


def sort_key(sort: str, now: float, alerts: Mapping[str, Severity] | None = None) -> Callable[[HostRecord], tuple[object, ...]]:
    if sort == "state":
        worst = alerts or {}
        return lambda r: (min(STATE_RANK[r.state(now)], ALERT_RANK.get(worst.get(r.name, Severity.INFO), 5)), r.name)
    # By the hosts' columns (gputui/frame_columns.py), not their GPUs: a sort reads every host.
    if sort == "util":
        return lambda r: (-_mean([u for u in r.columns.util_pct if u is not None]), r.name)
    if sort == "temp":
        return lambda r: (-max((t for t in r.columns.temp_c if t is not None), default=-1), r.name)
    if sort == "mem":
        return lambda r: (-_mean(_mem_pcts(r.columns)), r.name)
    return lambda r: (r.name,)


def _mem_pcts(columns: GpuColumns) -> list[float]:
    """Each GPU's memory in use, in per cent, where it says both figures (``GpuSample.mem_pct``)."""
    pairs = zip(columns.mem_used_mib, columns.mem_total_mib, strict=True)
    return [100.0 * used / total for used, total in pairs if used is not None and total]


def arrange(
    store: FleetStore,
    needle: str = "",
    sort: str = "name",
    grouping: str = "none",
    alerts: Mapping[str, Severity] | None = None,
) -> list[Row]:
    """``alerts``: each host's worst alert now, for the "state" sort."""
    now = store.clock()
    hosts = sorted((r for r in store.hosts.values() if matches(r, needle)), key=sort_key(sort, now, alerts))
    if grouping == "none":
        return [Row(r.name, r.name) for r in hosts]
    groups: dict[str, list[HostRecord]] = {}
    for r in hosts:
        keys = [r.group or "(no group)"] if grouping == "group" else (list(r.tags) or ["(no tag)"])
        for key in keys:  # a host with two tags shows under both
            groups.setdefault(key, []).append(r)
    rows: list[Row] = []
    for key in sorted(groups):
        rows.append(Row(key, None, len(groups[key])))
        rows.extend(Row(r.name, r.name) for r in groups[key])
    return rows


class Arrangement:
    """``arrange``'s rows, kept while they cannot differ, so that a refresh does not filter and sort
    the whole fleet for nothing. By name and unfiltered (the usual overview) they change only when a
    host is added; any other order or a filter reads the hosts' data, and the "state" order the
    clock and the alerts too, so those are kept while the overview's figures are (the same store
    version, no host turned stale since: ``generation``) and the alerts are the same."""

    def __init__(self, store: FleetStore) -> None:
        self.store = store
        self.key: tuple[object, ...] | None = None
        self.rows: list[Row] = []
        self.hosts_shown = 0  # distinct hosts in the rows (a host with two tags shows twice)

    def rows_for(self, needle: str, sort: str, grouping: str, alerts: Mapping[str, Severity], generation: int) -> list[Row]:
        """The rows; the same list object as last time when nothing they depend on moved."""
        if sort == "name" and not needle:
            key: tuple[object, ...] = (len(self.store.hosts), needle, sort, grouping)
        else:
            key = (generation, needle, sort, grouping, dict(alerts) if sort == "state" else None)
        if key != self.key:
            self.rows = arrange(self.store, needle, sort, grouping, alerts)
            self.hosts_shown = len({r.host for r in self.rows if r.host is not None})
            self.key = key
        return self.rows
