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


def _file_fingerprint(path: Path) -> str | None:
    for candidate in (path.with_name(path.name + ".pub"), path):
        try:
            return str(asyncssh.read_public_key(str(candidate)).get_fingerprint("sha256"))
        except (OSError, asyncssh.KeyImportError, ValueError):
            continue
    return None


def _files_fingerprints(config: Config) -> list[str]:
    files = [*config.ssh.identity_files, *(f for h in config.hosts for f in h.identity_files)]
    prints = (_file_fingerprint(Path(name).expanduser()) for name in dict.fromkeys(files))
    return [fp for fp in prints if fp]


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
