"""``?``: the keys of the screen underneath, generated from its bindings.

The screen's own keys come first, then the keys that work everywhere, then
the keys that move the cursor. Textual's generic keys (focus next, copy,
scrolling a widget) are left out: only keys that gputui's own classes bind
are listed. The box scrolls and fits the terminal's width.
"""

from __future__ import annotations

from functools import cache

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from gputui.ui.panels.base import asciify_scrollbars
from gputui.ui.widgets.palette import ascii_mode

INTRO = (
    "gputui: GPU fleet dashboard. Data older than 3 sample intervals is marked stale and drawn dim.\n"
    "'dashboard behind' on top: gputui has no CPU left to read what its hosts send, so stale may be its own lag.\n"
    "t: the triage, every active alert worst first (it opens by itself the first time one is active).\n"
    "ctrl+r records the live fleet (~/.local/state/gputui/recordings/); `gputui replay FILE` plays it back."
)
SECTIONS = ("Keys on this screen", "Everywhere", "Moving the cursor")
MOVING = ("move(", "jump(")  # the fleet's cursor (gputui/ui/widgets/fleet_view.py)
RENAMED = {"command_palette": "Command palette"}  # Textual's own description is "palette"
KEY_WIDTH = 14  # the key column at most; the box is 80 wide at most, and fits narrower terminals


@cache
def declared(cls: type) -> frozenset[tuple[str, str]]:
    """(key, action) of every binding that gputui's classes among ``cls`` and its bases declare."""
    pairs: set[tuple[str, str]] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("gputui"):
            bindings = Binding.make_bindings(klass.__dict__.get("BINDINGS", []))
            pairs |= {(b.key, b.action) for b in bindings}
    return frozenset(pairs)


def section_of(node: DOMNode, binding: Binding) -> int | None:
    """Where a binding is listed (an index into SECTIONS), or None: a generic Textual key."""
    if binding.action in RENAMED:
        return 1
    if not binding.description or (binding.key, binding.action) not in declared(type(node)):
        return None
    if binding.action.startswith(MOVING):
        return 2
    return 1 if node is node.app else 0


def describe_keys(screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(section, keys, what they do) for every described gputui binding active on ``screen``.

    Keys bound to the same action are listed together (``↑ k``), the
    screen's own first: the order of SECTIONS, then the bindings' order.
    """
    rows: dict[tuple[int, str, str], list[str]] = {}
    for active in screen.active_bindings.values():
        b = active.binding
        section = section_of(active.node, b)
        if section is None:
            continue
        what = RENAMED.get(b.action, b.description)
        keys = rows.setdefault((section, b.action, what), [])
        key = screen.app.get_key_display(b)
        if key not in keys:
            keys.append(key)
    ordered = sorted(rows.items(), key=lambda row: row[0][0])  # stable: each section keeps its order
    return [(SECTIONS[section], " ".join(keys), what) for (section, _, what), keys in ordered]


def help_text(keys: list[tuple[str, str, str]]) -> str:
    """The help as markup: a heading per section, a row per key, then the intro."""
    width = min(KEY_WIDTH, max((len(k) for _, k, _ in keys), default=0))
    lines: list[str] = []
    heading = ""
    for section, key, what in keys:
        if section != heading:  # the rows come grouped by section
            lines += [*([""] if lines else []), f"[b]{section}[/b]"]
            heading = section
        lines.append(f"  [b]{escape(key.ljust(width))}[/b]  {escape(what)}")
    return "\n".join(lines) + f"\n\n{escape(INTRO)}\n\nPress escape to close."


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close help")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):  # the arrows, PgUp/PgDn, Home/End scroll it
            yield Static(help_text(describe_keys(self.under)), id="help-text")

    def on_mount(self) -> None:
        box = self.query_one("#help-box", VerticalScroll)
        if ascii_mode(self.app):
            asciify_scrollbars(box)
        box.focus()
