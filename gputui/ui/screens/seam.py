"""How the screens and the app reach each other, typed both ways.

What a screen may read of the app is handed to it when the app makes it
(:class:`AppParts`), never looked up on the app by attribute name; what a
screen asks of the app is a message the app handles (:class:`OpenAction`).
A screen shown by another app (a test's plain Textual app) gets the
defaults: no alert board, no action desk, and its requests go unanswered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.message import Message

from gputui.actions.guard import Outcome
from gputui.actions.model import Target
from gputui.fleet.allocation import DEFAULT_IDLE_HOLDING_S
from gputui.fleet.pace import Pace
from gputui.ui.dialogs.action_screen import ActionDesk
from gputui.ui.state.alerts import AlertBoard


@dataclass(frozen=True)
class AppParts:
    """What a screen may read of the app: given when the screen is made, passed on to the screens it opens."""

    board: AlertBoard | None = None  # the alerts as of the app's last health tick
    actions: ActionDesk | None = None  # None: no config (the demo, a replay): actions cannot run at all
    idle_holding_s: float = DEFAULT_IDLE_HOLDING_S  # the allocation tab's "idle while holding" threshold
    pace: Pace | None = None  # whether the dashboard keeps up with its hosts (the app measures it)
    # The time of day the screens show ages against: a replay's is the recording's, not today's.
    wall_clock: Callable[[], float] = time.time

    def behind_words(self) -> str:
        """ "dashboard behind: ..." while the app cannot read its hosts' frames in time, else ""."""
        return self.pace.reading.words() if self.pace is not None else ""


class OpenAction(Message):
    """Open the guarded action dialog on ``targets``; the app says why not when it cannot
    (no config, nothing selected). ``done`` gets the outcome when the dialog closes;
    ``reason`` pre-fills the form's."""

    def __init__(
        self,
        kind: str,
        targets: Sequence[Target],
        detail: str = "",
        done: Callable[[Outcome | None], None] | None = None,
        reason: str = "",
    ) -> None:
        super().__init__()
        self.kind = kind
        self.targets = tuple(targets)
        self.detail = detail
        self.done = done
        self.reason = reason


class Refreshed(Message):
    """The overview has just refreshed (every ``REFRESH_S``). The app starts each health pass a
    moment after one of these, so that the pass runs between two refreshes: a refresh and a slice
    of the pass due at the same moment ran in one turn of the event loop, holding it for both
    (50 ms at 1,024 hosts). Taken from each refresh as it happened, a late one (the loop busy at
    start) moves the next pass with it, never the passes after."""
