"""``?``: the keys of the screen underneath, generated from its bindings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

INTRO = (
    "gputui: GPU fleet dashboard. Data older than 3 sample intervals is marked stale and drawn dim.\n"
    "t: the triage, every active alert worst first (it opens by itself the first time one is active).\n"
    "ctrl+r records the live fleet (~/.local/state/gputui/recordings/); `gputui replay FILE` plays it back."
)


def describe_keys(screen: Screen[object]) -> list[tuple[str, str]]:
    """(key, what it does) for every described binding active on ``screen``."""
    seen: dict[str, str] = {}
    for active in screen.active_bindings.values():
        b = active.binding
        # Our own keys, not the generic cursor keys of Textual's widgets.
        ours = type(active.node).__module__.startswith("gputui")
        key = screen.app.get_key_display(b)
        if ours and b.description and key not in seen:
            seen[key] = b.description
    return list(seen.items())


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close help")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        rows = "\n".join(f"  [b]{key:<12}[/b] {desc}" for key, desc in describe_keys(self.under))
        with Vertical(id="help-box"):
            yield Static(f"[b]Keys[/b]\n\n{rows}\n\n{INTRO}\n\nPress escape to close.", id="help-text")
