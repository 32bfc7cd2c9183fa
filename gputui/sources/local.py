"""``transport = "local"``: the agent as a child process of the dashboard (real NVML, or ``sim``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gputui.sources.base import AgentLines, Source, SourceContext

if TYPE_CHECKING:
    from gputui.config import Host


def host_source(host: Host, context: SourceContext) -> Source:
    from gputui.transport.local import LocalLink, agent_argv

    config = context.config
    argv = agent_argv(
        config.interval,
        host.sim,
        host.seed,
        host.gpus,
        host_name=host.name if host.sim else None,
        sim_processes=host.sim_processes,
        state_dir=config.actions.state_dir,
        changes=True,  # this installation's own agent: it speaks them, and AgentLines decodes them
    )
    return AgentLines(LocalLink(host.name, argv))
