"""A form to add a host; the app appends it to the config and connects."""

from __future__ import annotations

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from gputui.config import Host, describe

FIELDS = (
    ("name", "Name (as in ssh_config, or any label)", "gpu-17"),
    ("address", "Address (empty: the name)", "gpu-17.cluster.internal"),
    ("user", "User (empty: ssh_config's)", "ops"),
    ("port", "Port (empty: ssh_config's, or 22)", "22"),
    ("tags", "Tags, comma separated", "h100, rack-b"),
)


class AddHostScreen(ModalScreen[Host | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="add-box"):
            yield Static("[b]Add a host[/b] (appended to the config file; comments are kept)")
            for key, label, example in FIELDS:
                yield Label(label)
                yield Input(placeholder=example, id=f"f-{key}")
            yield Static("", id="add-error")
            yield Button("Add", variant="primary", id="add")

    def on_mount(self) -> None:
        self.query_one("#f-name", Input).focus()

    def entry(self) -> dict[str, object]:
        values = {key: self.query_one(f"#f-{key}", Input).value.strip() for key, _, _ in FIELDS}
        out: dict[str, object] = {"name": values["name"]}
        if values["address"]:
            out["address"] = values["address"]
        if values["user"]:
            out["user"] = values["user"]
        if values["port"]:
            out["port"] = int(values["port"]) if values["port"].isdigit() else values["port"]
        tags = [t.strip() for t in values["tags"].split(",") if t.strip()]
        if tags:
            out["tags"] = tags
        return out

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.submit()

    def on_input_submitted(self) -> None:
        self.submit()

    def submit(self) -> None:
        data = self.entry()
        try:
            host = Host.model_validate(data)
        except ValidationError as exc:
            problems = "\n".join(describe(e, data) for e in exc.errors())
            self.query_one("#add-error", Static).update(Text(problems, style="bold red"))
            return
        self.dismiss(host)

    def action_cancel(self) -> None:
        self.dismiss(None)
