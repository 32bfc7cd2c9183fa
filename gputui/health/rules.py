"""The rules: pure functions from what the store holds of one host to raw findings.

A finding is a condition seen now, not yet an alert: the engine
(:mod:`gputui.health.engine`) decides when it becomes one (hold time), when
it goes (clear time) and since when it has been true. Rules know nothing of
time passing except through :class:`Context`: the wall clock, the XIDs seen
within the window and how much each error counter rose within its window,
both kept by the engine. So a rule is tested with a record and a context.

Numeric conditions come with hysteresis: past the threshold a rule reports
a finding; within the band just short of it a *band* finding, which keeps an
alert that is already on (or on its way) but never starts one. A GPU hovering
at the threshold therefore alerts once and stays alerted.
"""

from __future__ import annotations

from collections.abc import Sequence

from gputui.config import Thresholds
from gputui.fleet.allocation import IDLE_UTIL_PCT
from gputui.fleet.store import HostRecord, HostState
from gputui.frame_columns import GpuColumns
from gputui.frames import GpuSample, GpuStatic, XidEvent
from gputui.health.calm import NEAR_SHUTDOWN_C, THERMAL_REASONS, calm, calm_at
from gputui.health.finding import Context, Finding
from gputui.health.idle import idle_finding, idle_findings, idle_holding, may_hold_idle
from gputui.health.model import Severity
from gputui.health.words import clock_words, plural, short
from gputui.health.xid import recovery_action, xid_info
from gputui.render import age_words, fmt, throttle_words

LOST_XID = 79


NVLINK_COUNTERS = tuple((name, f"nvlink_{name}") for name in ("crc_flit", "crc_data", "replay", "recovery"))


def counter_parts(g: GpuSample) -> tuple[object, ...]:
    """What :func:`counter_values` reads: a GPU whose parts are equal to the last ones has no new
    counter value (the health engine skips it; keep the two in step)."""
    return (g.ecc, g.pcie_replays, g.nvlink)


def counter_values(g: GpuSample) -> dict[str, int]:
    """The cumulative error counters whose rise some rule watches; absent when the GPU does not say.

    Each counter is watched under its own name, never one standing in for
    another: a read that fails once must not look like a reset (the value
    "drops" to the other counter) followed by a huge rise (it comes back)."""
    out: dict[str, int] = {}
    if g.ecc is not None:
        if g.ecc.aggregate_corrected is not None:
            out["ecc_corrected_agg"] = g.ecc.aggregate_corrected
        if g.ecc.volatile_corrected is not None:
            out["ecc_corrected_vol"] = g.ecc.volatile_corrected
    if g.pcie_replays is not None:
        out["pcie_replays"] = g.pcie_replays
    if g.nvlink is not None:
        for name, counter in NVLINK_COUNTERS:
            value = getattr(g.nvlink, name)
            if value is not None:
                out[counter] = value
    return out


# -- host -----------------------------------------------------------------------
def host_findings(record: HostRecord, ctx: Context, state: HostState | None = None, all_calm: bool = False) -> list[Finding]:
    """Everything wrong with one host: its connection, its XIDs, and (live only) each GPU.
    ``state``: the host's state at ``ctx.mono_now`` where the caller has it already. ``all_calm``:
    every GPU of its last sample is ``calm`` (gputui/health/calm.py, ``HostCalm``), so that only
    the idle-holding rule is asked of it, and only of its idle GPUs (most hosts, most seconds)."""
    if state is None:
        state = record.state(ctx.mono_now)
    out = host_state(record, state, ctx)
    if ctx.xids:
        c = record.columns
        out += xid_findings(ctx.xids, {index for index, lost in zip(c.indices, c.lost, strict=True) if lost}, ctx.now)
    if state is HostState.LIVE:
        out += idle_findings(record, ctx) if all_calm and not ctx.climbs else each_gpu_findings(record, ctx)
        if False in record.columns.persistence_mode:
            persistence = persistence_off(record.columns)
            if persistence is not None:
                out.append(persistence)
    return out


def each_gpu_findings(record: HostRecord, ctx: Context) -> list[Finding]:
    """``gpu_findings`` for each GPU of a host not all calm. A GPU calm by its columns (most GPUs
    even of such a host) is asked only what ``gpu_findings`` asks a calm one, and made whole only
    for the idle-holding rule; any other is made whole and judged by every rule."""
    out = []
    c, statics, th = record.columns, record.statics, ctx.thresholds
    for place, index in enumerate(c.indices):
        if not calm_at(c, place, statics.get(index), th):
            out += gpu_findings(record.gpu_at(place), record, statics, ctx)
            continue
        if may_hold_idle(c, place):
            found = idle_finding(record, place, ctx)
            if found is not None:
                out.append(found)
        out += climbing(index, ctx)
    return out


def host_state(record: HostRecord, state: HostState, ctx: Context) -> list[Finding]:
    """A host that stopped sending (stale) or cannot be reached (down)."""
    if state is HostState.STALE:
        age = record.age_s(ctx.mono_now) or 0.0
        return [
            Finding(
                "stale",
                Severity.WARNING,
                None,
                f"{record.name}: no data for {age_words(age)} (stale)",
                "the agent stopped sending: check the host's load and network; its GPUs' alerts are as last seen",
                {"last data": clock_words(ctx.now - age, ctx.now), "interval": f"{record.interval_s:g} s"},
                since=ctx.now - age,
            )
        ]
    if state is HostState.DOWN:
        down_for = ctx.mono_now - (record.down_since if record.down_since is not None else ctx.mono_now)
        return [
            Finding(
                "down",
                Severity.WARNING,
                None,
                f"{record.name}: unreachable",
                "check the host is up and reachable (gputui check-config tries it); its GPUs' alerts are as last seen",
                {"error": short(record.error or "unknown"), "tries": str(record.connects)},
                since=ctx.now - max(0.0, down_for),
            )
        ]
    return []


def xid_findings(events: Sequence[XidEvent], lost: set[int], now: float) -> list[Finding]:
    """One finding per GPU and XID number seen within the window (the engine keeps only those)."""
    groups: dict[tuple[int | None, int], list[XidEvent]] = {}
    for e in events:
        if e.xid == LOST_XID and e.gpu in lost:
            continue  # the lost-GPU alert carries it: one problem, one alert
        groups.setdefault((e.gpu, e.xid), []).append(e)
    out = []
    for (gpu, xid), group in groups.items():
        info = xid_info(xid)
        last = max(group, key=lambda e: e.t)
        severity, advice = recovery_action(info, last.text)
        evidence = {
            "class": info.cls.value,
            "count": str(len(group)),
            "last": clock_words(last.t, now),
            "source": "kernel log" if last.source == "kernel" else "NVML event",
        }
        if last.pid is not None:
            evidence["pid"] = str(last.pid)
        if last.text:
            evidence["driver"] = short(last.text, 100)
        where = f"GPU {gpu}" if gpu is not None else "an unknown GPU"
        title = f"XID {xid} on {where}: {info.meaning}"
        since = min(e.t for e in group)
        out.append(Finding("xid", severity, gpu, title, advice, evidence, extra=str(xid), since=since, immediate=True))
    return out


def persistence_off(columns: GpuColumns) -> Finding | None:
    """Persistence mode off, said once per host: it is a host setting more than a GPU's."""
    off = [index for index, mode in zip(columns.indices, columns.persistence_mode, strict=True) if mode is False]
    if not off:
        return None
    return Finding(
        "persistence",
        Severity.INFO,
        None,
        f"persistence mode off on {plural(len(off), 'GPU')}",
        "enable it (nvidia-persistenced, or nvidia-smi -pm 1): without it the driver unloads between jobs and starts are slow",
        {"GPUs": ", ".join(map(str, off))},
    )


# -- GPU ------------------------------------------------------------------------
def gpu_findings(g: GpuSample, record: HostRecord, statics: dict[int, GpuStatic], ctx: Context) -> list[Finding]:
    static = statics.get(g.index)
    out: list[Finding | None] = []
    if calm(g, static, ctx.thresholds):
        if g.util_pct is not None and g.util_pct > IDLE_UTIL_PCT:  # busy (idle_holding's own first test) and healthy:
            return climbing(g.index, ctx)  # most GPUs, most seconds
    elif g.lost or (static is not None and static.lost):
        return [lost(g.index, ctx)]
    else:
        th = ctx.thresholds
        out = [thermal(g, static, th), slowdown(g), memory(g, th), remap(g), retired(g), uncorrected_ecc(g)]
    out += (idle_holding(g, record.history.get(g.index), ctx.thresholds, ctx.now, ctx.jobs.get(g.index)), field_errors(g))
    found = [f for f in out if f is not None]
    return found + climbing(g.index, ctx)


def lost(index: int, ctx: Context) -> Finding:
    """A GPU NVML cannot reach; the last XID seen on it (usually 79) is the evidence, however old."""
    evidence = {"lost": "yes: NVML cannot reach it"}
    last = ctx.last_xid.get(index)
    if last is not None:
        source = "kernel log" if last.source == "kernel" else "NVML event"
        evidence["xid"] = f"{last.xid} ({xid_info(last.xid).meaning}) at {clock_words(last.t, ctx.now)}, {source}"
    return Finding(
        "lost",
        Severity.CRITICAL,
        index,
        f"GPU {index} has fallen off the bus (lost)",
        xid_info(LOST_XID).advice,
        evidence,
        since=last.t if last is not None and last.xid == LOST_XID else None,
        immediate=True,
    )


def thermal(g: GpuSample, static: GpuStatic | None, th: Thresholds) -> Finding | None:
    """Near its own slowdown point, slowed down for heat, or close to shutting itself off."""
    temp = g.temp_c
    slowdown = static.temp_slowdown_c if static else None
    shutdown = static.temp_shutdown_c if static else None
    reasons = sorted(set(g.throttle or ()) & THERMAL_REASONS)
    margin = None if temp is None or slowdown is None else slowdown - temp
    near_shutdown = temp is not None and shutdown is not None and temp >= shutdown - NEAR_SHUTDOWN_C
    slowed = bool(reasons) or (margin is not None and margin <= 0)
    hot = margin is not None and margin <= th.temp_margin_c
    warm = margin is not None and margin <= th.temp_margin_c + th.temp_hysteresis_c
    if not (near_shutdown or slowed or warm):
        return None
    evidence = {"temp": fmt(temp, "{} C"), "slowdown at": fmt(slowdown, "{} C"), "shutdown at": fmt(shutdown, "{} C")}
    if static is not None and static.temp_limits_from is not None:
        evidence["limits from"] = static.temp_limits_from
    if reasons:
        evidence["throttle"] = throttle_words(reasons)
    what = "thermal slowdown" if slowed else "running hot"
    title = f"GPU {g.index} {what} at {fmt(temp, '{} C')}"
    if near_shutdown and temp is not None and shutdown is not None:
        title += f", {shutdown - temp} C from shutdown" if temp < shutdown else ", at its shutdown temperature"
        advice = f"cut its load now (drain it) and check the node's cooling: at {shutdown} C the GPU turns itself off"
        return Finding("thermal", Severity.CRITICAL, g.index, title, advice, evidence)
    if slowed:
        advice = "clocks are cut and jobs run slower: check the node's airflow, fans and inlet temperature"
        return Finding("thermal", Severity.WARNING, g.index, title, advice, evidence)
    title += f", {margin} C below its slowdown point"
    advice = "check the node's airflow and inlet temperature before it starts to throttle"
    return Finding("thermal", Severity.WARNING, g.index, title, advice, evidence, band=not hot)


def slowdown(g: GpuSample) -> Finding | None:
    """Clocks cut by the power brake (or a hardware slowdown that is not thermal)."""
    reasons = set(g.throttle or ())
    if "hw_power_brake" in reasons:
        title = f"GPU {g.index} slowed by the power brake"
    elif "hw_slowdown" in reasons and not reasons & THERMAL_REASONS:
        title = f"GPU {g.index} hardware slowdown (power brake or overheating)"
    else:
        return None
    advice = "the board or the node's power supply pulled the brake: check the PSUs, power feed and BMC log; jobs run slower"
    evidence = {
        "throttle": throttle_words(sorted(reasons)),
        "power": f"{fmt(g.power_w, '{:.0f}')} / {fmt(g.power_limit_w, '{:.0f}')} W",
    }
    return Finding("throttle", Severity.WARNING, g.index, title, advice, evidence)


def memory(g: GpuSample, th: Thresholds) -> Finding | None:
    pct = g.mem_pct
    if pct is None or pct < th.mem_used_pct - th.mem_hysteresis_pct:
        return None
    evidence = {
        "used": f"{fmt(g.mem_used_mib, '{:,}')} / {fmt(g.mem_total_mib, '{:,}')} MiB",
        "threshold": f"{th.mem_used_pct:g}%",
    }
    return Finding(
        "memory",
        Severity.WARNING,
        g.index,
        f"GPU {g.index} memory {pct:.0f}% full",
        "the job on it may run out of GPU memory (CUDA out of memory): tell its owner if it fails",
        evidence,
        band=pct < th.mem_used_pct,
    )


def uncorrected_ecc(g: GpuSample) -> Finding | None:
    """Uncorrected ECC errors: critical since the last reset, information over the board's life."""
    e = g.ecc
    if e is None:
        return None
    volatile, aggregate = e.volatile_uncorrected or 0, e.aggregate_uncorrected or 0
    if not volatile and not aggregate:
        return None
    evidence = {
        "uncorrected": f"{fmt(e.volatile_uncorrected)} since reset, {fmt(e.aggregate_uncorrected)} lifetime",
        "corrected": f"{fmt(e.volatile_corrected)} since reset, {fmt(e.aggregate_corrected)} lifetime",
    }
    if not volatile:
        title = f"GPU {g.index} has had {plural(aggregate, 'uncorrected ECC error')} in its life"
        advice = "nothing to do while no new ones appear and its remapped rows are in place"
        return Finding("ecc", Severity.INFO, g.index, title, advice, evidence, extra="uncorrected")
    pending = bool(g.remapped_rows and g.remapped_rows.pending) or bool(g.retired_pages and g.retired_pages.pending)
    if pending:
        advice = "reset the GPU when idle: the pending remap takes effect at reset; jobs that hit the bad memory may have failed"
    else:
        advice = "jobs that hit the bad memory may have failed: reset the GPU when idle; replace it if errors return"
    title = f"GPU {g.index} has {plural(volatile, 'uncorrected ECC error')} since its last reset"
    return Finding("ecc", Severity.CRITICAL, g.index, title, advice, evidence, extra="uncorrected")


def remap(g: GpuSample) -> Finding | None:
    """Row remapping (Ampere and later): pending wants a reset, failure wants a new GPU."""
    r = g.remapped_rows
    if r is None or not (r.pending or r.failure):
        return None
    evidence = {
        "remapped rows": f"{fmt(r.uncorrectable)} uncorrectable, {fmt(r.correctable)} correctable",
        "pending": "yes" if r.pending else "no",
        "failure": "yes" if r.failure else "no",
    }
    if r.failure:
        title, advice = f"GPU {g.index} row remapping failed", "it cannot hide its bad memory any more: drain it and replace it"
        return Finding("remap", Severity.CRITICAL, g.index, title, advice, evidence)
    title = f"GPU {g.index} has a row remap pending"
    return Finding(
        "remap", Severity.WARNING, g.index, title, "reset the GPU when idle: the remap takes effect at reset", evidence
    )


def retired(g: GpuSample) -> Finding | None:
    """Page retirement (before Ampere): a retirement waits for the next reset."""
    p = g.retired_pages
    if p is None or not p.pending:
        return None
    evidence = {"retired pages": f"{fmt(p.double_bit)} double-bit, {fmt(p.single_bit)} single-bit", "pending": "yes"}
    title = f"GPU {g.index} has a page retirement pending"
    return Finding(
        "retired", Severity.WARNING, g.index, title, "reset the GPU when idle (or reboot) to retire the page", evidence
    )


def field_errors(g: GpuSample) -> Finding | None:
    if not g.field_errors:
        return None
    names = sorted(g.field_errors)
    evidence = {name: short(g.field_errors[name], 60) for name in names[:6]}
    title = f"GPU {g.index}: NVML could not read {', '.join(names[:3])}{' and more' if len(names) > 3 else ''}"
    advice = "the driver failed to answer: if it persists, look for XIDs in dmesg and consider a driver update"
    return Finding("nvml", Severity.INFO, g.index, title, advice, evidence)


def climbing(index: int, ctx: Context) -> list[Finding]:
    """Error counters that rose within the counter window: PCIe replays, NVLink, corrected ECC."""
    if not ctx.climbs:  # nothing rose on this host: the usual case, and a thousand hosts are judged each second
        return []
    window = f"{ctx.thresholds.counter_window_minutes:g} min"
    names = ("pcie_replays", "nvlink_crc_flit", "nvlink_crc_data", "nvlink_replay", "nvlink_recovery")
    rise = {name: ctx.climbs.get((index, name), 0) for name in names}
    rise["nvlink_crc"] = rise.pop("nvlink_crc_flit") + rise.pop("nvlink_crc_data")
    out = []
    if rise["pcie_replays"]:
        out.append(
            Finding(
                "pcie",
                Severity.WARNING,
                index,
                f"GPU {index} PCIe replays climbing (+{rise['pcie_replays']} in {window})",
                "the PCIe link is resending: reseat the GPU or riser at the next maintenance; drain it if XID 79 follows",
                {"rise": str(rise["pcie_replays"]), "window": window},
            )
        )
    link = {k: v for k, v in rise.items() if k.startswith("nvlink") and v}
    if link:
        serious = bool(rise["nvlink_replay"] or rise["nvlink_recovery"])
        out.append(
            Finding(
                "nvlink",
                Severity.WARNING if serious else Severity.INFO,
                index,
                f"GPU {index} NVLink errors climbing",
                "reset the GPUs when idle; if it continues, run diagnostics and check the NVLink bridge or baseboard",
                {k.removeprefix("nvlink_"): f"+{v} in {window}" for k, v in link.items()},
            )
        )
    # The lifetime counter where the board has one, else the one since the last reset.
    corrected = ctx.climbs.get((index, "ecc_corrected_agg"), 0) or ctx.climbs.get((index, "ecc_corrected_vol"), 0)
    if corrected:
        out.append(
            Finding(
                "ecc",
                Severity.INFO,
                index,
                f"GPU {index} corrected ECC errors climbing (+{corrected} in {window})",
                "corrected errors cost nothing yet: replace the GPU if they keep climbing fast or uncorrected ones appear",
                {"rise": str(corrected), "window": window},
                extra="corrected",
            )
        )
    return out
