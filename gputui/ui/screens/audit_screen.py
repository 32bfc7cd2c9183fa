"""``A``: what was done, and what holds now.

The top table is the local audit log, latest first, under the verdict of
its hash chain: an operator reading the record should know whether it can
be trusted. The bottom table is every host's ledger as its latest sample
reports it: which GPUs are reserved or drained, for whom, until when, why.
The log is read when the screen opens and on ``r`` (a long log is not
re-read every second); the ledgers follow the store once a second.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from gputui.actions.audit import AuditLog
from gputui.actions.render import when
from gputui.fleet.allocation import LedgerMark
from gputui.fleet.store import FleetStore
from gputui.ui.panels.allocation import ledger_of, short, until_words
from gputui.ui.panels.base import asciify_scrollbars
from gputui.ui.widgets.footer import KeysFooter
from gputui.ui.widgets.palette import Palette, ascii_mode
from gputui.ui.widgets.table_sync import Cell, sync_rows

SHOWN = 500  # the latest records in the table; the whole log is verified
LOG_COLUMNS = ("Id", "Time", "Operator", "Status", "Action", "Targets", "Reason", "Message")
LEDGER_COLUMNS = ("Host", "GPU", "State", "For", "By", "Until", "Reason")
REFRESH_S = 1.0


def status_style(status: str, pal: Palette) -> Any:
    if status in ("applied", "dry-run"):
        return pal.ok
    if status in ("refused", "failed", "partial"):
        return pal.bad
    return pal.warn if status == "started" else pal.dim


def record_row(r: dict[str, Any], pal: Palette) -> tuple[Cell, ...]:
    t = r.get("t")
    operator = r.get("operator") or {}
    who = f"{operator.get('user', '?')}@{operator.get('host', '?')}" if isinstance(operator, dict) else "?"
    status = str(r.get("status", "?"))
    return (
        str(r.get("id", "?")),
        when(t) if isinstance(t, (int, float)) else "?",
        who,
        Text(status, style=status_style(status, pal)),
        str(r.get("action", "?")),
        " ".join(str(x) for x in r.get("targets") or []),
        short(str(r.get("reason") or ""), 40),
        short(str(r.get("message") or ""), 80),
    )


def ledger_row(host: str, what: str, mark: LedgerMark, pal: Palette) -> tuple[Cell, ...]:
    style = pal.warn if mark.state == "drained" else pal.accent
    return (
        host,
        what,
        Text(mark.state, style=style),
        mark.holder or "",
        mark.by or "",
        until_words(mark.until) if mark.until is not None else "",
        short(mark.reason, 60),
    )


class AuditScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload the log"),
    ]

    def __init__(self, store: FleetStore, audit: AuditLog | None) -> None:
        super().__init__()
        self.store = store
        self.audit = audit

    def compose(self) -> ComposeResult:
        yield Static(id="audit-verdict")
        yield Static(Text("Audit log, latest first"), classes="audit-heading")
        yield DataTable(id="audit-log", cursor_type="row", zebra_stripes=True)
        yield Static(id="ledger-heading", classes="audit-heading")
        yield DataTable(id="ledgers", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        for table, columns in ((self.log_table, LOG_COLUMNS), (self.ledger_table, LEDGER_COLUMNS)):
            table.add_columns(*columns)
            if ascii_mode(self.app):
                asciify_scrollbars(table)
        self.action_reload()
        self.update_ledgers()
        self.log_table.focus()
        self.set_interval(REFRESH_S, self.update_ledgers)

    @property
    def log_table(self) -> DataTable[Cell]:
        return self.query_one("#audit-log", DataTable)

    @property
    def ledger_table(self) -> DataTable[Cell]:
        return self.query_one("#ledgers", DataTable)

    def action_reload(self) -> None:
        """Read and verify the log again."""
        pal = Palette.of(self.app)
        verdict = self.query_one("#audit-verdict", Static)
        if self.audit is None:
            verdict.update(Text("no audit log: actions need a config file (the demo fleet has none)", style=pal.dim))
            return
        check = self.audit.verify()
        records = self.audit.records()
        head = Text(f"{self.audit.path}   ", style=pal.dim)
        if check.ok and not records:
            head.append("no records yet", pal.dim)
        elif check.ok:
            head.append(f"chain intact: {check.records} records, chain and head agree", pal.ok)
        else:
            head.append(f"DAMAGED: {'; '.join(check.problems)}", pal.bad)
        if len(records) > SHOWN:
            head.append(f"   showing the latest {SHOWN} of {len(records)}", pal.dim)
        verdict.update(head)
        latest = records[::-1][:SHOWN]
        rows = {f"{i}:{r.get('id', '?')}": record_row(r, pal) for i, r in enumerate(latest)}
        table = self.log_table
        table.clear()
        for key, row in rows.items():
            table.add_row(*row, key=key)

    def update_ledgers(self) -> None:
        pal = Palette.of(self.app)
        rows: dict[str, tuple[Cell, ...]] = {}
        for name, record in self.store.hosts.items():
            held = ledger_of(record)
            if held.error:
                rows[f"{name}:error"] = (name, "", Text("unreadable", style=pal.bad), "", "", "", short(held.error, 60))
            if held.node is not None:
                rows[f"{name}:node"] = ledger_row(name, "node", held.node, pal)
            for index, mark in sorted(held.gpus.items()):
                rows[f"{name}:{index}"] = ledger_row(name, str(index), mark, pal)
        sync_rows(self.ledger_table, rows)
        hosts = len({key.split(":")[0] for key in rows})
        words = "no host reports a reserved or drained GPU"
        if rows:
            words = f"{len(rows)} entr{'ies' if len(rows) != 1 else 'y'} on {hosts} host{'s' * (hosts != 1)}"
        heading = f"Ledgers, from each host's latest sample: {words}"
        self.query_one("#ledger-heading", Static).update(Text(heading, style=pal.header))
