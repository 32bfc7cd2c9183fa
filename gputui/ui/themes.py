"""Themes are files: ``themes/*.toml`` shipped with gputui, and the user's.

Textual has no theme-file loader, so each file is checked with pydantic and
turned into a ``Theme``. A bad file is reported (file, key, problem) and
skipped; the app falls back to the built-in dark theme.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from textual.app import App
from textual.theme import Theme

from gputui.config import default_path, describe


class ThemeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    dark: bool = True
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


def theme_dirs() -> list[Path]:
    shipped = Path(__file__).resolve().parent.parent.parent / "themes"
    installed = Path(__file__).resolve().parent / "themes"
    return [d for d in (shipped, installed, default_path().parent / "themes") if d.is_dir()]


def load_theme(path: Path) -> Theme:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    spec = ThemeFile.model_validate(data)
    return Theme(**spec.model_dump())


def register_themes(app: App[Any]) -> list[str]:
    """Register every theme found; return one message per bad file."""
    problems: list[str] = []
    for folder in theme_dirs():
        for path in sorted(folder.glob("*.toml")):
            try:
                app.register_theme(load_theme(path))
            except tomllib.TOMLDecodeError as exc:
                problems.append(f"{path}: not valid TOML: {exc}")
            except ValidationError as exc:
                problems.extend(f"{path}: {describe(e, {})}" for e in exc.errors())
            except OSError as exc:
                problems.append(f"{path}: cannot read: {exc.strerror}")
    if "gputui-dark" not in app.available_themes:
        app.register_theme(Theme(name="gputui-dark", primary="#4FC3F7", dark=True))
    return problems
