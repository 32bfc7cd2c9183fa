"""What is known of GPUs without asking them: the clock-event reason bits by
the names the agent gives them, and common models' default temperature limits.

Shared by the sources that read GPUs at second hand (nvidia-smi's CSV, a
Prometheus holding dcgm-exporter's metrics), which get a bitmask or a model
name where the agent gets NVML's own answers.
"""

from __future__ import annotations

import re

# NVML's clock-event reason bits, by the names the agent gives them (gputui.agent.fields.THROTTLE_BITS).
REASON_BITS = (
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake"),
)

# (slowdown, shutdown) in C by model, for GPUs whose nvidia-smi has no T.Limit.
# These are defaults, not the board's own numbers: what ``nvidia-smi -q`` shows
# as "GPU Slowdown Temp" and "GPU Shutdown Temp" on common data-centre boards
# of each model. A site whose boards differ sets ``temp_slowdown_c`` on the host.
MODEL_LIMITS: dict[str, tuple[int, int]] = {
    "GH200": (89, 92),
    "H200": (89, 92),
    "H100": (89, 92),
    "A100": (89, 92),
    "V100": (87, 90),
    "T4": (93, 96),
}


def model_limits(name: str | None) -> tuple[str, tuple[int, int]] | None:
    """The model's default limits, matched on whole words of the name so
    that "T4" is not found inside another model's name."""
    words = set(re.split(r"[^A-Za-z0-9]+", (name or "").upper()))
    for model, limits in MODEL_LIMITS.items():
        if model in words:
            return model, limits
    return None


def reasons_of(mask: int) -> list[str]:
    """The active clock-event reasons of a bitmask, by name; [] for none."""
    return sorted(name for bit, name in REASON_BITS if mask & bit)
