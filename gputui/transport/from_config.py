"""Turns config host entries into links."""

from __future__ import annotations

from gputui.config import Config, Host
from gputui.transport.base import Link
from gputui.transport.local import LocalLink, agent_argv
from gputui.transport.ssh import SshLink, SshShared


class LinkFactory:
    """Makes the link for a host entry; SSH links share one bundle and handshake cap."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.shared: SshShared | None = None

    def __call__(self, host: Host) -> Link:
        if host.transport == "local":
            name = host.name if host.sim else None
            argv = agent_argv(
                self.config.interval,
                host.sim,
                host.seed,
                host.gpus,
                host_name=name,
                sim_processes=host.sim_processes,
                state_dir=self.config.actions.state_dir,
            )
            return LocalLink(host.name, argv)
        if self.shared is None:
            self.shared = SshShared.create(self.config.ssh, self.config.interval, self.config.actions.state_dir)
        return SshLink(host, self.shared)


def links_for(config: Config) -> list[Link]:
    make = LinkFactory(config)
    return [make(h) for h in config.hosts]
