"""Colours for data, taken from the theme in use so every theme reads right."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from textual.app import App


@dataclass(frozen=True)
class Palette:
    text: Style
    dim: Style
    ok: Style
    warn: Style
    bad: Style
    accent: Style
    cursor: Style
    header: Style
    base: Style

    @classmethod
    def of(cls, app: App[Any]) -> Palette:
        t = app.current_theme
        fg = t.foreground or ("#e0e0e0" if t.dark else "#202020")
        return cls(
            text=Style(color=fg),
            dim=Style(color=fg, dim=True),
            ok=Style(color=t.success or "green"),
            warn=Style(color=t.warning or "yellow", bold=True),
            bad=Style(color=t.error or "red", bold=True),
            accent=Style(color=t.accent or t.primary),
            cursor=Style(bgcolor=t.primary, color=t.background or "black", bold=True),
            header=Style(color=t.primary, bold=True),
            base=Style(bgcolor=t.background) if t.background else Style(),
        )


def ascii_mode(app: App[Any]) -> bool:
    """Whether to draw with ASCII only (the Linux console theme): the app's ``-ascii``
    class, set with its ``ascii`` flag and the one its stylesheet keys on."""
    return app.has_class("-ascii")


DEGREES = re.compile(r"(?<=\d) C\b")


def celsius(text: str, ascii: bool) -> str:
    """The health engine's plain "92 C" in the unit every screen of the theme shows:
    "92 °C", or "92 C" on the Linux console."""
    return text if ascii else DEGREES.sub(" °C", text)
