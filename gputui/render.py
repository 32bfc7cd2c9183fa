"""Shared wording for values on screen and in reports: N/A is not zero."""

from __future__ import annotations

NA = "N/A"

THROTTLE_WORDS = {
    "sw_power_cap": "power cap",
    "hw_slowdown": "HW slowdown",
    "sync_boost": "sync boost",
    "sw_thermal_slowdown": "thermal (SW)",
    "hw_thermal_slowdown": "thermal (HW)",
    "hw_power_brake": "power brake",
}


def fmt(value: object, pattern: str = "{}") -> str:
    """A value for display; ``None`` (not available) as N/A, never as 0."""
    if value is None:
        return NA
    return pattern.format(value)


def throttle_words(reasons: list[str] | None) -> str:
    if reasons is None:
        return NA
    if not reasons:
        return "none"
    return ", ".join(THROTTLE_WORDS.get(r, r) for r in reasons)


def age_words(age_s: float | None) -> str:
    if age_s is None:
        return "-"
    if age_s < 60:
        return f"{age_s:.0f}s"
    if age_s < 3600:
        return f"{age_s / 60:.0f}m"
    return f"{age_s / 3600:.1f}h"
