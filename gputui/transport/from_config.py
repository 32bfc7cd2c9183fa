"""Turns config host entries into links."""

from __future__ import annotations

from gputui.config import Config, Host
from gputui.transport.base import Link
from gputui.transport.local import LocalLink, agent_argv
from gputui.transport.ssh import SshLink, SshShared


def local_link(host: Host, interval: float) -> Link:
    argv = agent_argv(interval, sim=host.sim, seed=host.seed, gpus=host.gpus, host_name=host.name if host.sim else None)
    return LocalLink(host.name, argv)


def links_for(config: Config) -> list[Link]:
    shared: SshShared | None = None
    links: list[Link] = []
    for host in config.hosts:
        if host.transport == "local":
            links.append(local_link(host, config.interval))
            continue
        if shared is None:
            shared = SshShared.create(config.ssh, config.interval)
        links.append(SshLink(host, shared))
    return links
