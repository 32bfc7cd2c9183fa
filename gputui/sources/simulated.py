"""What a simulated host may be asked for: the simulator's scenario names.

Config validation reads this on use, so that the config module does not
depend on the simulator's internals; the agent (local or over SSH) is what
runs a scenario.
"""

from __future__ import annotations

from gputui.sim.scenarios import SCENARIOS


def scenario_problem(name: str) -> str | None:
    """Why ``name`` is not a scenario, naming the known ones; None when it is."""
    if name in SCENARIOS:
        return None
    return f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}"
