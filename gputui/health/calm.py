"""The rules' fast path: a healthy GPU, and a host of them, told in a few comparisons.

Nearly every GPU of a fleet is healthy nearly every second, and the per-GPU
rules (gputui/health/rules.py) ran for each of them: at 1,024 hosts, 8,192
GPUs a second were a quarter of the dashboard's CPU. :func:`calm` tells one
GPU in a dozen comparisons. :class:`HostCalm` tells a whole host from its
columns (gputui/frame_columns.py): what changes rarely (lost GPUs, NVML's
failed reads, clock-event reasons, ECC and remapping state, total memory,
the GPUs' own temperature limits) is judged again only when a column of it
is a new tuple, and what moves every second is one ``max`` of the
temperatures and one comparison, in C, of each GPU's memory in use with the
amount at which it would be full.

Neither may ever say calm where a rule would speak: where unsure they say
no, and every rule judges (tests/test_health_calm.py checks both against the
rules, at and around every threshold).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import ge
from typing import cast

from gputui.config import Thresholds
from gputui.frame_columns import GpuColumns
from gputui.frames import Ecc, GpuSample, GpuStatic, RemappedRows, RetiredPages

THERMAL_REASONS = frozenset({"sw_thermal_slowdown", "hw_thermal_slowdown"})
SLOWDOWN_REASONS = THERMAL_REASONS | {"hw_power_brake", "hw_slowdown"}  # a clock-event reason some rule reports
NEAR_SHUTDOWN_C = 2  # this close to the shutdown point a thermal alert is critical


def calm_parts(
    lost: bool,
    field_errors: object,
    throttle: list[str] | None,
    ecc: Ecc | None,
    rows: RemappedRows | None,
    pages: RetiredPages | None,
) -> bool:
    """``calm``'s tests of what changes rarely, on one GPU's parts: not lost, no failed read, no
    slowdown reason, no uncorrected ECC error, no pending or failed remap or retirement."""
    if lost or field_errors:
        return False
    if throttle and not SLOWDOWN_REASONS.isdisjoint(throttle):
        return False
    if ecc is not None and (ecc.volatile_uncorrected or ecc.aggregate_uncorrected):
        return False
    if rows is not None and (rows.pending or rows.failure):
        return False
    return pages is None or not pages.pending


def calm(g: GpuSample, static: GpuStatic | None, th: Thresholds) -> bool:
    """Whether no per-GPU rule but the idle-holding one can find anything on ``g`` (error counters
    climbing aside): a healthy GPU."""
    if not calm_parts(g.lost, g.field_errors, g.throttle, g.ecc, g.remapped_rows, g.retired_pages):
        return False
    return calm_figures(g.temp_c, g.mem_used_mib, g.mem_total_mib, static, th)


def calm_at(c: GpuColumns, place: int, static: GpuStatic | None, th: Thresholds) -> bool:
    """``calm`` for the GPU at ``place`` of a host's columns, its model not made for it: what a host
    not all calm asks of each GPU, so that only those a rule may speak of are made whole."""
    parts = (
        c.lost[place],
        c.field_errors[place],
        c.throttle[place],
        c.ecc[place],
        c.remapped_rows[place],
        c.retired_pages[place],
    )
    if not calm_parts(*parts):
        return False
    return calm_figures(c.temp_c[place], c.mem_used_mib[place], c.mem_total_mib[place], static, th)


def calm_figures(temp: int | None, used: int | None, total: int | None, static: GpuStatic | None, th: Thresholds) -> bool:
    """``calm``'s tests of what moves every second: temperature against the GPU's own limits (not
    lost), memory in use below the threshold."""
    if static is not None:
        if static.lost:
            return False
        if temp is not None:
            slowdown, shutdown = static.temp_slowdown_c, static.temp_shutdown_c
            if slowdown is not None and slowdown - temp <= th.temp_margin_c + th.temp_hysteresis_c:
                return False
            if shutdown is not None and temp >= shutdown - NEAR_SHUTDOWN_C:
                return False
    return not (used is not None and total and 100.0 * used / total >= th.mem_used_pct - th.mem_hysteresis_pct)


def hottest_calm_c(statics: Mapping[int, GpuStatic], th: Thresholds) -> float | None:
    """The highest whole-degree temperature at which every GPU with these limits is calm on
    temperature (``calm``'s two tests, against the lowest limit among them); None where one of them
    is lost (no GPU of the host is calm then), infinity where none has a limit.

    Exact for whole degrees, as NVML gives them: below its slowdown point a GPU is calm when
    ``slowdown - temp > margin + hysteresis``, which for a whole ``slowdown - temp`` is
    ``temp <= slowdown - floor(margin + hysteresis) - 1``; below its shutdown point when
    ``temp <= shutdown - NEAR_SHUTDOWN_C - 1``. A fractional temperature held to the same bound
    can only be called not calm where ``calm`` would call it calm, never the other way."""
    band = math.floor(th.temp_margin_c + th.temp_hysteresis_c)
    hottest = math.inf
    for static in statics.values():
        if static.lost:
            return None
        if static.temp_slowdown_c is not None:
            hottest = min(hottest, static.temp_slowdown_c - band - 1)
        if static.temp_shutdown_c is not None:
            hottest = min(hottest, static.temp_shutdown_c - NEAR_SHUTDOWN_C - 1)
    return hottest


def full_at_mib(total: int | None, th: Thresholds) -> float:
    """The least whole number of MiB in use at which a GPU with ``total`` MiB is not ``calm`` for
    its memory (``100.0 * used / total >= mem_used_pct - mem_hysteresis_pct``, the very test, so
    that a rounding in the division cannot tell the two apart); infinity where the total is not
    known. At most ``total`` + 1: a GPU using more than all its memory is past any threshold."""
    if not total:
        return math.inf
    full = th.mem_used_pct - th.mem_hysteresis_pct
    used = max(0, math.floor(total * full / 100.0) - 1)
    while used <= total and 100.0 * used / total < full:
        used += 1
    return used


class HostCalm:
    """One host's answer to "is every GPU calm?", kept between passes: its steady part
    (``calm_parts`` for each GPU, and the temperature bound) is worked out again only when one of
    its columns, the host's limits or the thresholds are not the same objects as the last time."""

    __slots__ = ("full_at", "hottest", "statics", "steady", "steady_ok", "thresholds")

    def __init__(self) -> None:
        self.steady: tuple[object, ...] = ()
        self.statics: Mapping[int, GpuStatic] | None = None
        self.thresholds: Thresholds | None = None
        self.steady_ok = False
        self.hottest: float | None = None
        self.full_at: tuple[float, ...] = ()  # per GPU, the memory in use (MiB) from which it is not calm

    def all_calm(self, c: GpuColumns, statics: Mapping[int, GpuStatic], th: Thresholds) -> bool:
        """Whether ``calm`` holds for every GPU of the columns (with its static from ``statics``). It
        may say no where each GPU is calm (a host with one GPU near its own limit is held to the
        lowest limit of all of them); then each GPU is judged on its own, as before."""
        steady = (c.lost, c.field_errors, c.throttle, c.ecc, c.remapped_rows, c.retired_pages, c.mem_total_mib)
        if steady != self.steady or statics is not self.statics or th is not self.thresholds:
            self.steady, self.statics, self.thresholds = steady, statics, th
            self.steady_ok = all(map(calm_parts, c.lost, c.field_errors, c.throttle, c.ecc, c.remapped_rows, c.retired_pages))
            self.hottest = hottest_calm_c(statics, th)
            self.full_at = tuple(full_at_mib(total, th) for total in c.mem_total_mib)
        hottest = self.hottest
        if not self.steady_ok or hottest is None:
            return False
        temps = c.temp_c
        known = cast("Sequence[int]", temps if None not in temps else [t for t in temps if t is not None])
        if known and max(known) > hottest:
            return False
        used = c.mem_used_mib
        if None in used:
            return False  # not worth a path of its own: each GPU is judged
        return not any(map(ge, cast("Sequence[int]", used), self.full_at))
