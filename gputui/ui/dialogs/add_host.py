"""A form to add a host; the app appends it to the config and connects.

Each label sits beside its field so that every field, the message line and
the button fit an 80x24 terminal. A mistake (a bad port, a name already in
the config) is said on the message line and the form stays open with what
was typed, so the operator can fix it rather than start again.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from gputui.config import Host, describe

FIELDS = (
    ("name", "Name (ssh_config alias or label)", "gpu-17"),
    ("address", "Address (empty: the name)", "gpu-17.cluster.internal"),
    ("user", "User (empty: ssh_config's)", "ops"),
    ("port", "Port (empty: ssh_config's or 22)", "22"),
    ("tags", "Tags, comma separated", "h100, rack-b"),
)
# Adds the host; the reason it was refused, or None when it was added.
AddHost = Callable[[Host], str | None]


def port_problem(port: str) -> str | None:
    """A port must be a whole number from 1 to 65535; said in words, not as a validation error."""
    if not port or (port.isdigit() and 1 <= int(port) <= 65535):
        return None
    return f"port: {port!r} is not a port; give a number from 1 to 65535, or leave it empty for ssh_config's (or 22)"


class AddHostScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, add: AddHost) -> None:
        super().__init__()
        self.add = add

    def compose(self) -> ComposeResult:
        with Vertical(id="add-box"):
            yield Static("[b]Add a host[/b] (appended to the config file; comments are kept)", id="add-title")
            for key, label, example in FIELDS:
                with Horizontal(classes="add-field"):
                    yield Label(label, classes="add-label")
                    yield Input(placeholder=example, id=f"f-{key}")
            yield Static("", id="add-error")
            yield Button("Add", variant="primary", id="add")

    def on_mount(self) -> None:
        self.query_one("#f-name", Input).focus()

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#f-{key}", Input).value.strip() for key, _, _ in FIELDS}

    def entry(self, values: dict[str, str]) -> dict[str, object]:
        out: dict[str, object] = {"name": values["name"]}
        if values["address"]:
            out["address"] = values["address"]
        if values["user"]:
            out["user"] = values["user"]
        if values["port"]:
            out["port"] = int(values["port"])
        tags = [t.strip() for t in values["tags"].split(",") if t.strip()]
        if tags:
            out["tags"] = tags
        return out

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.submit()

    def on_input_submitted(self) -> None:
        self.submit()

    def submit(self) -> None:
        values = self.values()
        problem = port_problem(values["port"])
        if problem is not None:
            self.say(problem)
            return
        data = self.entry(values)
        try:
            host = Host.model_validate(data)
        except ValidationError as exc:
            self.say("\n".join(describe(e, data) for e in exc.errors()))
            return
        refused = self.add(host)
        if refused is not None:
            self.say(f"not added: {refused}")
            return
        self.dismiss(None)

    def say(self, problem: str) -> None:
        self.query_one("#add-error", Static).update(Text(problem, style="bold red"))

    def action_cancel(self) -> None:
        self.dismiss(None)
