"""Host-key checking as OpenSSH does it: strict by default, accept-new on request.

asyncssh checks ``known_hosts`` itself but has no "accept-new"; this client
hook adds it, and records what the server presented so that a refusal can
say which host, which fingerprint, and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh


class HostKeyGate(asyncssh.SSHClient):
    """Called by asyncssh only for a key that ``known_hosts`` does not trust."""

    def __init__(self, known_hosts: Path, accept_new: bool) -> None:
        self.known_hosts = known_hosts
        self.accept_new = accept_new
        self.presented: str | None = None  # fingerprint of the refused or accepted key
        self.checked: tuple[str, int] | None = None  # the name and port asyncssh checked (after ssh_config)
        self.host_was_known = False
        self.recorded = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.presented = key.get_fingerprint()
        self.checked = (host, port)
        self.host_was_known = host_is_known(self.known_hosts, host, addr, port)
        if self.host_was_known or not self.accept_new:
            return False  # a changed key is never accepted, whatever the mode
        record_key(self.known_hosts, host, port, key)
        self.recorded = True
        return True


def host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def host_is_known(path: Path, host: str, addr: str, port: int) -> bool:
    try:
        known = asyncssh.read_known_hosts(str(path))
    except (OSError, ValueError):
        return False
    trusted = known.match(host, addr, port)[0]
    return bool(trusted)


def record_key(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Append one line, as ``ssh`` with StrictHostKeyChecking=accept-new does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{host_pattern(host, port)} {key.export_public_key('openssh').decode().strip()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line)


def refusal(gate: HostKeyGate, name: str, host: str, port: int) -> str:
    """The message an operator needs when a host key is not trusted."""
    host, port = gate.checked or (host, port)
    pattern = host_pattern(host, port)
    fp = gate.presented or "unknown fingerprint"
    if gate.host_was_known:
        return (
            f"HOST KEY CHANGED for {name} ({pattern}): it presented {fp}, which does not match "
            f"{gate.known_hosts}. This may be an attack; if the host was reinstalled, verify the new key "
            f"and remove the old one with: ssh-keygen -R '{pattern}' -f {gate.known_hosts}"
        )
    return (
        f"unknown host key for {name} ({pattern}): {fp} is not in {gate.known_hosts}. "
        f"Verify it (ssh-keyscan -p {port} {host} | ssh-keygen -lf -), then add it to known_hosts, "
        "or set accept_new = true under [ssh] to trust hosts on first contact"
    )
