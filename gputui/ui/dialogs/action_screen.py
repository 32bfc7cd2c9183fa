"""One guarded action, from the host screen: form → preview → confirm → apply.

The screen is the CLI's ``_guarded`` flow (gputui/actions/cli.py) drawn as a
dialog, through the same :class:`Guard`: the policy, the hosts' previews, the
typed confirmation and the audit record are the guard's, never this
screen's. Hosts are asked in Textual workers, so a slow host never freezes
the dashboard. Every way out is on record: a refusal is audited by the
guard's ``prepare``, and closing a shown preview without applying it is
recorded as cancelled.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from gputui.actions.audit import AuditError, AuditLog
from gputui.actions.guard import Guard, Outcome, Plan
from gputui.actions.identity import key_fingerprints
from gputui.actions.model import ActionRequest, Operator, Target
from gputui.actions.render import conflict_words, outcome_lines, outcome_words, plan_lines
from gputui.actions.until import parse_until
from gputui.config import Config
from gputui.protocol import words_problem
from gputui.ui.panels.base import asciify_scrollbars
from gputui.ui.widgets.palette import Palette, ascii_mode

TITLES = {
    "reserve": "Reserve",
    "release": "Release",
    "drain": "Drain",
    "undrain": "Undrain",
    "kill": "Kill process",
    "drain-node": "Drain node",
    "resume-node": "Resume node",
    "reserve-node": "Reserve node (Slurm reservation)",
    "release-node": "Release node (Slurm reservation)",
}
HOLDS = ("reserve", "reserve-node")  # the actions that hold for someone, until a time
UNTIL_HINT = "2h, 30m, 1d or 2026-12-01 08:00; empty: no end"


class ActionDesk:
    """The guard as the dashboard holds it: one per app, built on first use.

    The operator's key fingerprints are read once, in a worker, the first
    time an action is previewed; the dashboard starts no slower for it.
    """

    def __init__(self, config: Config, read_only: bool = False, guard: Guard | None = None) -> None:
        self.config = config
        self.read_only = read_only
        self._guard = guard
        self.audit = guard.audit if guard is not None else AuditLog(Path(config.actions.audit_log).expanduser())

    @property
    def built(self) -> Guard | None:
        return self._guard

    def mode_words(self) -> str | None:
        """What the title line says when no action can run, or None when they can."""
        if self.read_only:
            return "read-only"
        return None if self.config.actions.enabled else "actions off"

    async def guard(self) -> Guard:
        if self._guard is None:
            operator = Operator.local(await key_fingerprints(self.config))
            self._guard = Guard(self.config, operator, self.audit, read_only=self.read_only)
        return self._guard


@dataclass(frozen=True)
class Draft:
    """What the operator picked before the form: the action and where."""

    kind: str
    targets: tuple[Target, ...]
    detail: str = ""  # kill: which process, in words
    reason: str = ""  # the form's reason to start from (an alert's title), the operator's to edit

    def label(self) -> str:
        where = " ".join(t.label() for t in self.targets)
        return f"{TITLES.get(self.kind, self.kind)}: {where}" + (f"   {self.detail}" if self.detail else "")


class ActionScreen(ModalScreen[Outcome | None]):
    """The dialog. Phases: form, asking, preview, refused, applying, done."""

    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, desk: ActionDesk, draft: Draft) -> None:
        super().__init__()
        self.desk = desk
        self.draft = draft
        self.phase = "form"
        self.plan: Plan | None = None
        self.outcome: Outcome | None = None

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        """The form and the preview scroll; the status, confirmation and buttons stay in sight below them."""
        kind = self.draft.kind
        with VerticalScroll(id="action-box"):
            yield Static(Text(self.draft.label(), style="bold"), id="action-title")
            yield from _field("reason", "reason (required, for the audit log)", value=self.draft.reason)
            yield from _field("ticket", "ticket id (optional)")
            if kind in HOLDS:
                yield from _field("holder", "user or team", value=getpass.getuser(), label="for")
                yield from _field("until", UNTIL_HINT)
            if kind == "kill":
                yield StateCheckbox("SIGKILL if SIGTERM is ignored", id="kill-after")
            yield Static(id="action-preview")
            with Vertical(id="action-foot"):  # docked at the box's bottom: never scrolled away
                yield Static(id="action-status")
                yield Input(id="confirm")
                with Horizontal(id="action-buttons"):
                    yield Button("Preview", id="preview", variant="primary")
                    yield Button("Dry run", id="dry-run")
                    yield Button("Apply", id="apply", variant="error", disabled=True)
                    yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        if ascii_mode(self.app):
            asciify_scrollbars(self.query_one("#action-box", VerticalScroll))
            for box in self.query(Checkbox):
                box.BUTTON_LEFT, box.BUTTON_RIGHT = "[", "]"
        self.query_one("#confirm", Input).display = False
        self.query_one("#action-preview").display = False
        self.query_one("#reason", Input).focus()
        self.sync_buttons()

    @property
    def pal(self) -> Palette:
        return Palette.of(self.app)

    def say(self, text: str, style: str = "text") -> None:
        self.query_one("#action-status", Static).update(Text(text, style=getattr(self.pal, style)))

    def show_lines(self, lines: list[str], tail: list[str] | None = None, tail_style: str = "text") -> None:
        """The preview, read from its first line; with an outcome (``tail``), scrolled to that."""
        text = Text("\n".join(lines), style=self.pal.text)
        if tail:
            text.append("\n\n" + "\n".join(tail), style=getattr(self.pal, tail_style))
        shown = self.query_one("#action-preview", Static)
        shown.update(text)
        shown.display = True
        box = self.query_one("#action-box", VerticalScroll)
        if tail:
            box.scroll_end(animate=False)
        else:
            box.call_after_refresh(box.scroll_to_widget, shown, animate=False, top=True)  # once it is laid out

    def sync_buttons(self) -> None:
        """Which buttons work in this phase; Apply only once the confirmation matches."""
        phase = self.phase
        self.query_one("#preview", Button).display = phase == "form"
        self.query_one("#dry-run", Button).disabled = phase not in ("form", "preview")
        self.query_one("#apply", Button).disabled = not (phase == "preview" and self.confirmed())
        cancel = self.query_one("#cancel", Button)
        cancel.disabled = phase == "applying"
        cancel.label = "Close" if phase in ("refused", "done") else "Cancel"
        for widget in self.query("#action-box Input, #action-box Checkbox"):
            if widget.id != "confirm":
                widget.disabled = phase != "form"

    def confirmed(self) -> bool:
        word = self.plan.confirmation if self.plan is not None else None
        return word is None or self.query_one("#confirm", Input).value.strip() == word

    # -- the form --------------------------------------------------------------
    def request(self) -> ActionRequest | None:
        """The request from the form, or None (and why, on the status line)."""
        reason = self.query_one("#reason", Input).value
        ticket = self.query_one("#ticket", Input).value.strip() or None
        problem = words_problem(reason, ticket)
        if problem:
            self.say(problem, "bad")
            self.query_one("#ticket" if problem.startswith("the ticket") else "#reason", Input).focus()
            return None
        request = ActionRequest(self.draft.kind, list(self.draft.targets), reason, ticket=ticket)
        if self.draft.kind in HOLDS:
            request.holder = self.query_one("#holder", Input).value.strip() or None
            until = self.query_one("#until", Input).value.strip()
            try:
                request.until = parse_until(until) if until else None
            except ValueError as exc:
                self.say(str(exc).replace("--until", "until"), "bad")
                self.query_one("#until", Input).focus()
                return None
        if self.draft.kind == "kill":
            request.kill_after = self.query_one("#kill-after", Checkbox).value
            request.term_wait_s = self.desk.config.actions.term_wait_s
        return request

    # -- events ----------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        button = event.button.id
        if button == "preview":
            self.start_preview(dry_run=False)
        elif button == "dry-run":
            self.start_dry_run()
        elif button == "apply":
            self.start_apply()
        elif button == "cancel":
            self.action_close()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "confirm":
            self.start_apply()
        elif self.phase == "form":
            self.start_preview(dry_run=False)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "confirm":
            self.sync_buttons()

    def action_close(self) -> None:
        """Escape or Cancel: a shown preview not applied is recorded as cancelled."""
        if self.phase == "applying":
            self.say("the hosts are applying it: wait for their answer", "warn")
            return
        if self.phase == "preview" and self.plan is not None:
            try:
                self.outcome = self.run_guarded(lambda g: g.cancel(self.plan_now(), "closed without applying"))
            except AuditError as exc:
                self.notify(f"{exc}", severity="error", markup=False)
        self.workers.cancel_group(self, "action")
        self.dismiss(self.outcome)

    # -- the phases ------------------------------------------------------------
    def start_preview(self, dry_run: bool) -> None:
        if self.phase != "form":
            return
        request = self.request()
        if request is None:
            return
        self.phase = "asking"
        self.sync_buttons()
        hosts = request.hosts
        self.say(f"asking {'the host' if len(hosts) == 1 else f'{len(hosts)} hosts'} for a preview...", "accent")
        self.run_worker(self.preview(request, dry_run), group="action", exclusive=True)

    def start_dry_run(self) -> None:
        if self.phase == "form":
            self.start_preview(dry_run=True)
        elif self.phase == "preview":
            self.finish(self.run_guarded(lambda g: g.dry_run(self.plan_now())))

    def start_apply(self) -> None:
        if self.phase != "preview" or not self.confirmed():
            return
        self.phase = "applying"
        self.sync_buttons()
        self.say("applying: waiting for the hosts' answer...", "accent")
        self.run_worker(self.apply(), group="action", exclusive=True)

    async def preview(self, request: ActionRequest, dry_run: bool) -> None:
        try:
            guard = await self.desk.guard()
            plan = await guard.prepare(request)
        except (AuditError, ValueError) as exc:
            self.fail(f"{exc}; nothing was done")
            return
        self.plan = plan
        if plan.refused is not None:
            self.phase = "refused"
            self.show_lines(plan_lines(plan))
            self.say(f"refused: {plan.refused}  (audit {plan.audit_id})", "bad")
            self.sync_buttons()
            self.query_one("#cancel", Button).focus()
            return
        if dry_run:
            self.show_lines(plan_lines(plan))
            self.finish(guard.dry_run(plan))
            return
        self.ask_confirmation(plan)

    def ask_confirmation(self, plan: Plan) -> None:
        self.phase = "preview"
        self.show_lines(plan_lines(plan))
        word = plan.confirmation
        if word is None:
            self.say("preview above. Apply to go ahead, Cancel (esc) to leave it", "warn")
            self.sync_buttons()
            self.query_one("#action-box", VerticalScroll).focus()  # the arrows scroll the preview
            return
        box = self.query_one("#confirm", Input)
        box.placeholder = f"type {word} to go ahead"
        box.display = True
        self.say(f"preview above. Type {word!r} and Apply to go ahead, Cancel (esc) to leave it", "warn")
        self.sync_buttons()
        box.focus()

    async def apply(self) -> None:
        plan = self.plan_now()
        try:
            outcome = await (await self.desk.guard()).apply(plan)
        except AuditError as exc:
            self.fail(f"{exc}; nothing more was done")
            return
        self.finish(outcome)

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.phase = "done"
        self.query_one("#confirm", Input).display = False
        style = "ok" if outcome.ok else "bad"
        self.show_lines(plan_lines(outcome.plan), outcome_lines(outcome), style)
        self.say(f"{outcome_words(outcome)}  (audit {outcome.audit_id})", style)
        if outcome.status == "failed" and conflict_words(outcome) is not None:
            # Someone acted on the targets between this preview and its apply, and nothing
            # was done: the form again, Preview at hand, since "preview again" comes next.
            self.phase, self.plan = "form", None
            self.sync_buttons()
            self.query_one("#preview", Button).focus()
            return
        self.sync_buttons()
        self.query_one("#cancel", Button).focus()

    def fail(self, why: str) -> None:
        self.phase = "done"
        self.say(why, "bad")
        self.sync_buttons()
        self.query_one("#cancel", Button).focus()

    def plan_now(self) -> Plan:
        assert self.plan is not None, "no plan: the preview has not come back"
        return self.plan

    def run_guarded(self, step: Callable[[Guard], Outcome]) -> Outcome:
        """A synchronous guard step (dry run, cancel): the guard exists once a plan does."""
        guard = self.desk.built
        assert guard is not None, "no guard: nothing was previewed"
        return step(guard)


class StateCheckbox(Checkbox):
    """A checkbox that shows its state without colour: ``[X] ...: yes`` or ``[ ] ...: no``.

    Textual's checkbox draws the same ``X`` both ways and tells them apart by
    colour alone, which the Linux console and a colour-blind operator lose.
    """

    def __init__(self, words: str, *, id: str) -> None:
        self.words = words
        super().__init__(self.state_label(False), id=id)
        self.BUTTON_INNER = " "

    def state_label(self, value: bool) -> str:
        return f"{self.words}: {'yes' if value else 'no'}"

    def _watch_value(self, value: bool) -> None:
        self.BUTTON_INNER = "X" if value else " "
        self.label = self.state_label(value)


def _field(name: str, placeholder: str, value: str = "", label: str | None = None) -> ComposeResult:
    with Horizontal(classes="action-field"):
        yield Label(label or name, classes="action-label")
        yield Input(value=value, placeholder=placeholder, id=name)
