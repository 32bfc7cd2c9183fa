"""Changing the config file without losing what the operator wrote.

tomli-w writes TOML but cannot keep comments, so the file is never
rewritten: a new ``[[hosts]]`` block (made by tomli-w) is appended, or the
one ``theme = ...`` line is replaced or inserted; the whole result is
validated as the dashboard would read it, and only then does it replace the
file, atomically. Anything else is refused with the reason, and the file is
left as it was.
"""

from __future__ import annotations

import os
import re
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
    _replace(path, text)
    return config


def set_theme(path: Path, theme: str) -> None:
    """Save ``theme`` as the config's top-level ``theme``; ConfigError (file untouched) if it cannot be.

    Only the ``theme = ...`` line changes (its trailing comment kept); without one, a line
    made by tomli-w goes in before the first table (and the comments just above it), or at
    the end. The file is created when missing. The result must read back as the same
    settings with only the theme changed, and load as the dashboard would load it.
    """
    try:
        raw = path.read_bytes() if path.exists() else b""
        before = raw.decode("utf-8")
    except OSError as exc:
        raise cfg.ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise cfg.ConfigError(f"{path}: not UTF-8 text; fix it before choosing a theme") from None
    try:
        current = tomllib.loads(before)
    except tomllib.TOMLDecodeError as exc:
        raise cfg.ConfigError(f"{path}: not valid TOML ({exc}); fix it before choosing a theme") from None
    text = _with_theme(before, theme)
    try:
        edited = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise cfg.ConfigError(f"{path}: cannot place the theme line ({exc}); set theme = {theme!r} by hand") from None
    if edited != {**current, "theme": theme}:
        raise cfg.ConfigError(
            f"{path}: cannot place the theme line without changing other settings; set theme = {theme!r} by hand"
        )
    cfg.parse(edited, str(path))  # refuse anything the dashboard could not read
    _replace(path, text)


_THEME_KEY = re.compile(r"""\s*(theme|"theme"|'theme')\s*=""")


def _parses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


def _with_theme(text: str, theme: str) -> str:
    """``text`` with its top-level theme set to ``theme``, every other byte kept."""
    newline = "\r\n" if "\r\n" in text else "\n"
    entry = tomli_w.dumps({"theme": theme}).rstrip("\n")
    lines = re.findall(r"[^\n]*\n|[^\n]+", text)  # split on "\n" only, as TOML does
    # A line starting with "[" is a table header only where the text before it is a
    # whole document (not inside a multi-line string or array).
    header = next(
        (i for i, line in enumerate(lines) if line.lstrip().startswith("[") and _parses("".join(lines[:i]))),
        len(lines),
    )
    for start in range(header):
        if not (_THEME_KEY.match(lines[start]) and _parses("".join(lines[:start]))):
            continue
        # The key/value ends on the first line after which it parses on its own.
        end = next((e for e in range(start, header) if _parses("".join(lines[start : e + 1]))), None)
        if end is None:
            break
        last = lines[end]
        body = last.rstrip("\r\n")
        ending = last[len(body) :]
        head = "".join(lines[start:end])
        cut = next((p for p, ch in enumerate(body) if ch == "#" and _parses(head + body[:p])), len(body))
        comment = body[len(body[:cut].rstrip()) :]
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        return "".join([*lines[:start], indent + entry + comment + ending, *lines[end + 1 :]])
    if header == len(lines):  # no table: at the end
        if text and not text.endswith(("\n", "\r")):
            text += newline
        return text + entry + newline
    at = header
    while at > 0 and lines[at - 1].lstrip().startswith("#"):  # the header's own comments stay with it
        at -= 1
    if not _parses("".join(lines[:at])):
        at = header
    return "".join([*lines[:at], entry + newline + newline, *lines[at:]])


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, then rename), keeping the file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gputui-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise cfg.ConfigError(f"{path}: cannot write: {exc.strerror}") from None
