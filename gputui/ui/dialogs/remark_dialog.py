"""The triage screen's acknowledgement and silence: the dialog that asks for
a note (and a silence's length), and the words that tell of them afterwards
on the screen and in the incident report."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from gputui.actions.until import parse_until
from gputui.ui.panels.allocation import until_words
from gputui.ui.state.alerts import AlertBoard, Remark
from gputui.ui.widgets.palette import Palette

DEFAULT_SILENCE = "1h"


def remarks_section(board: AlertBoard) -> str:
    """The operator's acknowledgements and silences, for the end of the report."""
    lines = []
    for remark in [*board.acks.values(), *board.silences.values()]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(remark.at))
        what = "acknowledged" if remark.action == "acknowledge" else f"silenced until {until_words(remark.until or 0)}"
        note = f": {remark.note}" if remark.note else ""
        record = f" (audit {remark.audit_id})" if remark.audit_id else " (not recorded: no audit log)"
        lines.append(f"- `{remark.key}` {what} by {remark.by} at {when}{note}{record}")
    return "\n\n## Acknowledged and silenced\n\n" + "\n".join(lines) + "\n" if lines else ""


class RemarkScreen(ModalScreen[tuple[float | None, str] | None]):
    """Asks for an acknowledgement's note, or a silence's duration and note."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, silence: bool, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.title_words = title
        self.silence = silence
        self.clock = clock

    def compose(self) -> ComposeResult:
        with Vertical(id="remark-box"):
            yield Static(Text(self.title_words, style="bold"), id="remark-title")
            if self.silence:
                with Horizontal(classes="action-field"):
                    yield Label("for", classes="action-label")
                    yield Input(placeholder=f"{DEFAULT_SILENCE} (empty), 30m, 1d or 2026-12-01 08:00", id="remark-for")
            with Horizontal(classes="action-field"):
                yield Label("note", classes="action-label")
                yield Input(placeholder="optional, for the record: who is on it, the ticket", id="remark-note")
            yield Static(id="remark-status")
            yield Static("enter: record it   esc: cancel", id="remark-hint")

    def on_mount(self) -> None:
        self.query_one("#remark-for" if self.silence else "#remark-note", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        until = None
        if self.silence:
            text = self.query_one("#remark-for", Input).value.strip() or DEFAULT_SILENCE
            try:
                until = parse_until(text, self.clock())
            except ValueError as exc:
                status = str(exc).replace("--until", "for")
                self.query_one("#remark-status", Static).update(Text(status, style=Palette.of(self.app).bad))
                self.query_one("#remark-for", Input).focus()
                return
        self.dismiss((until, self.query_one("#remark-note", Input).value))

    def action_cancel(self) -> None:
        self.dismiss(None)


def remark_words(remark: Remark) -> str:
    did = "acknowledged" if remark.action == "acknowledge" else f"silenced until {until_words(remark.until or 0)}"
    note = f": {remark.note}" if remark.note else ""
    return f"{did} by {remark.by} at {until_words(remark.at)}{note}"
