"""Adding a host to the config file without losing what the operator wrote.

tomli-w writes TOML but cannot keep comments, so the file is never
rewritten: the new ``[[hosts]]`` block (made by tomli-w) is appended, the
whole result is validated as the dashboard would read it, and only then
does it replace the file, atomically. Anything else is refused with the
reason, and the file is left as it was.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path

import tomli_w

from gputui import config as cfg


def host_block(host: cfg.Host) -> str:
    entry = host.model_dump(exclude_defaults=True)
    entry["name"] = host.name
    # Always a [[hosts]] table: tomli-w would write a short list of tables
    # inline, which appended after another [[hosts]] would nest inside it.
    return "[[hosts]]\n" + tomli_w.dumps(entry)


def append_host(path: Path, host: cfg.Host) -> cfg.Config:
    """Append ``host`` to the config at ``path``; the new config, or ConfigError."""
    try:
        before = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as exc:
        raise cfg.ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        current = tomllib.loads(before)
    except tomllib.TOMLDecodeError as exc:
        raise cfg.ConfigError(f"{path}: not valid TOML ({exc}); fix it before adding hosts") from None
    if any(h.get("name") == host.name for h in current.get("hosts", []) if isinstance(h, dict)):
        raise cfg.ConfigError(f"{path}: a host named {host.name!r} is already configured")
    text = before
    if text and not text.endswith("\n"):
        text += "\n"
    text += ("\n" if text else "") + host_block(host)
    config = cfg.parse(tomllib.loads(text), str(path))  # refuse anything the dashboard could not read
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gputui-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise cfg.ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    return config
