"""Shown when there is no config: how to start, in one screen."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Static

from gputui.ui.widgets.footer import KeysFooter


def welcome_text(path: Path, problem: str | None) -> str:
    shown = escape(str(path))
    problem = escape(problem) if problem else None
    head = f"[b $error]{problem}[/]\n\n" if problem else f"No config file at [b]{shown}[/b].\n\n"
    return (
        f"[b]gputui[/b]: a terminal dashboard for GPU clusters.\n\n{head}"
        "To look around on a simulated fleet:\n\n"
        "    [b]gputui demo[/b]\n\n"
        "To watch your own hosts, write the example config (every key explained) to\n"
        f"    [b]gputui example-config > {shown}[/b]\n"
        "(or point $GPUTUI_CONFIG at it), list your hosts under [[hosts]], and run [b]gputui[/b].\n\n"
        "Press q to quit."
    )


class WelcomeScreen(Screen[None]):
    def __init__(self, path: Path, problem: str | None = None) -> None:
        super().__init__()
        self.text = welcome_text(path, problem)

    def compose(self) -> ComposeResult:
        yield Static(self.text, id="welcome")
        yield KeysFooter()
