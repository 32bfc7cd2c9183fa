"""The operator's SSH key fingerprints, for policy rules and the audit log.

Policies may name operators by key rather than by local user name, because
on a shared jump host the user name says little. The keys are the ones the
operator would authenticate with: the configured identity files and the
ssh-agent's keys. Only public halves are read.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from gputui.config import Config
from gputui.transport.ssh_resolve import config_paths, resolve

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa", "id_ed25519_sk", "id_ecdsa_sk")


def _file_fingerprint(path: Path) -> str | None:
    for candidate in (path.with_name(path.name + ".pub"), path):
        try:
            return str(asyncssh.read_public_key(str(candidate)).get_fingerprint("sha256"))
        except (OSError, asyncssh.KeyImportError, ValueError):
            continue
    return None


def _files_fingerprints(config: Config) -> list[str]:
    files = [*config.ssh.identity_files, *(f for h in config.hosts for f in h.identity_files), *_ssh_config_files(config)]
    prints = (_file_fingerprint(Path(name).expanduser()) for name in dict.fromkeys(files))
    return [fp for fp in prints if fp]


def _ssh_config_files(config: Config) -> list[str]:
    """IdentityFile lines ssh_config gives the SSH hosts, else ssh's default
    keys: most operators name their key there, not in gputui's config."""
    paths = config_paths(config.ssh.config_file)
    found: list[str] = []
    for host in config.hosts:
        if host.transport != "ssh" or not paths:
            continue
        try:
            found += resolve(paths, host.address or host.name, host.port, host.user).identity_files
        except (OSError, ValueError):
            continue  # check-config reports a broken ssh_config; identity is best effort
    return found or [str(Path("~/.ssh").expanduser() / name) for name in DEFAULT_KEYS]


async def key_fingerprints(config: Config) -> tuple[str, ...]:
    found = _files_fingerprints(config)
    if os.environ.get("SSH_AUTH_SOCK"):
        try:
            async with asyncssh.connect_agent() as agent:
                keys = await agent.get_keys()
                found += [asyncssh.import_public_key(k.public_data).get_fingerprint("sha256") for k in keys]
        except (OSError, asyncssh.Error):
            pass  # no agent to ask: the local user name still identifies
    return tuple(dict.fromkeys(found))
