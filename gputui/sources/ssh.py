"""``transport = "ssh"`` (the default): the agent bundle run over SSH.

Nothing is installed beforehand; a host without a python3 that works is
read through nvidia-smi instead, with fewer fields (gputui/transport/ssh.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gputui.sources.base import AgentLines, Source, SourceContext

if TYPE_CHECKING:
    from gputui.config import Host


def host_source(host: Host, context: SourceContext) -> Source:
    from gputui.transport.ssh import SshLink

    return AgentLines(SshLink(host, context.ssh()))
