"""What ssh_config makes of a host entry: real name, user, port and jump hosts.

Read with asyncssh's own ssh_config parser, so that ``gputui check-config``
shows exactly what the connection will use.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path

Hop = tuple[str | None, str, int | None]


@dataclass(frozen=True)
class Resolved:
    hostname: str
    user: str
    port: int
    jumps: list[Hop]
    identity_files: tuple[str, ...] = ()  # IdentityFile lines, as ssh_config gives them

    def target(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"

    def via(self) -> str:
        return ",".join(host for _, host, _ in self.jumps) or "-"


def resolve(config_paths: list[str], host: str, port: int | None, user: str | None) -> Resolved:
    local_user = getpass.getuser()
    if not config_paths:
        return Resolved(host, user or local_user, port or 22, [])
    from asyncssh.config import SSHClientConfig  # the parser asyncssh connects with

    config = SSHClientConfig.load(None, config_paths, False, False, False, local_user, user or (), host, port or ())
    hostname = config.get("Hostname", host)
    real_user = user or config.get("User", local_user)
    real_port = port or config.get("Port", 22)
    identities = config.get("IdentityFile", ())
    files = tuple(str(f) for f in identities) if isinstance(identities, (list, tuple)) else ()
    return Resolved(str(hostname), str(real_user), int(str(real_port)), parse_jumps(config.get("ProxyJump")), files)


def config_paths(config_file: str | None) -> list[str]:
    """The ssh_config to read: the configured one, else ~/.ssh/config when it exists."""
    path = Path(config_file or "~/.ssh/config").expanduser()
    return [str(path)] if path.exists() else []


def parse_jumps(spec: object) -> list[Hop]:
    if not isinstance(spec, str) or spec.lower() == "none":
        return []
    hops: list[Hop] = []
    for hop in spec.split(","):
        hop_user, _, rest = hop.rpartition("@")
        hop_host, sep, hop_port = rest.rpartition(":")
        if not sep or not hop_port.isdigit():
            hop_host, hop_port = rest, ""
        hops.append((hop_user or None, hop_host, int(hop_port) if hop_port else None))
    return hops


def proxy_jumps(config_paths: list[str], host: str, port: int | None, user: str | None) -> list[Hop]:
    """The ProxyJump chain ssh_config gives for ``host``, as (user, host, port) hops."""
    return resolve(config_paths, host, port, user).jumps
