"""Themes are files: ``themes/*.toml`` shipped with gputui, and the user's.

Textual has no theme-file loader, so each file is checked with pydantic and
turned into a ``Theme``. A bad file is reported (file, key, problem) and
skipped; the app falls back to gputui-dark.

Colours are checked when the file is read, not when the theme is first
shown: each must be opaque and readable by both Textual (the widgets) and
Rich (the data colours, ``palette.py``), so it is stored as ``#RRGGBB``.

A theme may ask for ASCII-only drawing (``ascii = true``, the console
theme). The flag travels with the registered theme itself (``GpuTheme``),
so ``theme_is_ascii(app)`` answers for whatever theme the app shows, with no
state kept here.

Only these files' themes are offered: Textual's built-in ones (textual-dark,
nord, ...) are taken out of the app's registry, as their colours are not
checked for the data colours and, chosen on the Linux console, they would draw
braille charts and block sparklines there. So the palette's theme list, the
unknown-theme error and ``gputui check-config`` all name the same themes.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from textual.app import App
from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

from gputui.config import default_path, describe

DEFAULT_THEME = "gputui-dark"
CONSOLE_THEME = "gputui-console"

_COLOUR_FIELDS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "success", "warning", "error")


@dataclass
class GpuTheme(Theme):
    """A Textual theme that also says whether to draw with ASCII only."""

    ascii: bool = False


class ThemeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    dark: bool = True
    ascii: bool = False  # draw charts, bars and borders in ASCII only (the Linux console)
    primary: str
    secondary: str | None = None
    accent: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    success: str | None = None
    warning: str | None = None
    error: str | None = None

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a theme needs a name")
        return value

    @field_validator(*_COLOUR_FIELDS)
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return None if value is None else as_hex(value)


def as_hex(value: str) -> str:
    """A theme colour as ``#RRGGBB``; ValueError (in the operator's words) if it cannot be one."""
    if value.strip().lower().startswith("ansi_"):
        raise ValueError(
            f"ANSI colour names are not supported, got {value!r}; use the colour's hex value (e.g. '#AA0000' for red)"
        )
    try:
        colour = Color.parse(value)
    except ColorParseError as exc:
        raise ValueError(f"not a colour: {exc}") from None
    if colour.a < 1:
        raise ValueError(f"theme colours must be opaque, got {value!r}")
    return colour.hex6


def theme_dirs() -> list[Path]:
    """gputui's own themes (package data; in a checkout, a link to the top-level themes/), then the user's."""
    shipped = Path(__file__).resolve().parent.parent / "themes"
    return [d for d in (shipped, default_path().parent / "themes") if d.is_dir()]


def load_theme(path: Path) -> GpuTheme:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    spec = ThemeFile.model_validate(data)
    return GpuTheme(**spec.model_dump())


def load_themes() -> tuple[list[GpuTheme], list[str]]:
    """Every theme file that loads, and one message per problem (file, key, what is wrong)."""
    themes: list[GpuTheme] = []
    problems: list[str] = []
    for folder in theme_dirs():
        for path in sorted(folder.glob("*.toml")):
            try:
                themes.append(load_theme(path))
            except tomllib.TOMLDecodeError as exc:
                problems.append(f"{path}: not valid TOML: {exc}")
            except UnicodeDecodeError:
                problems.append(f"{path}: not UTF-8 text")
            except ValidationError as exc:
                problems.extend(f"{path}: {describe(e, {})}" for e in exc.errors())
            except OSError as exc:
                problems.append(f"{path}: cannot read: {exc.strerror}")
    return themes, problems


def register_themes(app: App[Any]) -> list[str]:
    """Make gputui's and the user's themes the app's only ones (Textual's own are dropped);
    return one message per problem (file, key, what is wrong). Set ``app.theme`` right after:
    the theme Textual starts with is gone."""
    for name in BUILTIN_THEMES:
        app.unregister_theme(name)
    themes, problems = load_themes()
    for theme in themes:
        app.register_theme(theme)
    if DEFAULT_THEME not in app.available_themes:
        app.register_theme(GpuTheme(name=DEFAULT_THEME, primary="#4FC3F7", dark=True))
    return problems


def theme_names() -> set[str]:
    """The themes the dashboard offers, found without starting it: every theme file that loads."""
    return {DEFAULT_THEME, *(theme.name for theme in load_themes()[0])}


def offered_themes(app: App[Any]) -> list[str]:
    """The names of the themes the operator may choose (gputui's and the user's files), sorted."""
    return sorted(name for name, theme in app.available_themes.items() if isinstance(theme, GpuTheme))


def unknown_theme(configured: str, available: Collection[str]) -> str | None:
    """The config's ``theme`` key in the operator's words when no such theme exists, else None."""
    if configured in available:
        return None
    return f"theme: unknown theme {configured!r}; available: {', '.join(sorted(available))}"


def theme_is_ascii(app: App[Any], name: str | None = None) -> bool:
    """Whether theme ``name`` (default: the one the app shows) wants ASCII-only drawing."""
    theme = app.current_theme if name is None else app.get_theme(name)
    return isinstance(theme, GpuTheme) and theme.ascii


def ascii_themes(app: App[Any]) -> set[str]:
    """The names of the registered themes that want ASCII-only drawing."""
    return {name for name, theme in app.available_themes.items() if isinstance(theme, GpuTheme) and theme.ascii}


def console_terminal(env: Mapping[str, str] = os.environ) -> bool:
    """Whether we draw on the Linux console (16 colours, no box-drawing font to count on).

    ``GPUTUI_ASCII=1`` forces it on anywhere, ``GPUTUI_ASCII=0`` off even on the console;
    otherwise it is ``TERM=linux`` (or one of its variants such as ``linux-16color``).
    """
    forced = env.get("GPUTUI_ASCII", "").strip()
    if forced in ("1", "0"):
        return forced == "1"
    term = env.get("TERM", "")
    return term == "linux" or term.startswith("linux-")


def pick_theme(configured: str | None, available: Collection[str], env: Mapping[str, str] = os.environ) -> str:
    """The theme to show: the console theme on the Linux console (whatever the config says),
    else the configured theme if it is registered, else gputui-dark."""
    if console_terminal(env) and CONSOLE_THEME in available:
        return CONSOLE_THEME
    if configured is not None and configured in available:
        return configured
    return DEFAULT_THEME
