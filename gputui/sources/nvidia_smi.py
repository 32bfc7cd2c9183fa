"""``transport = "nvidia-smi"``: a host read through ``nvidia-smi`` over SSH only.

For hosts where a site allows no uploaded code to run: nothing is copied,
and the only command run is ``nvidia-smi --query-gpu=... -lms N``. It
gives fewer fields than the agent (no processes' owners, no XID events,
no remapped rows): those are null on screen, never 0. Actions on such a
host need a backend that does not run the agent (``slurmctld``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gputui.sources.base import AgentLines, Source, SourceContext

if TYPE_CHECKING:
    from gputui.config import Host


def host_source(host: Host, context: SourceContext) -> Source:
    from gputui.transport.ssh import SshLink

    return AgentLines(SshLink(host, context.ssh(), agent=False))
