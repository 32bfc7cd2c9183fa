"""``t``: what is wrong on the fleet, worst first, and what to do about it.

The active alerts (from the app's :class:`~gputui.ui.state.alerts.AlertBoard`,
which evaluates the health engine once a second) grouped by host: a host's
line, then its alerts, each with its severity, where (``host:gpu``), what,
since when and the advice. Hosts are ordered by their worst alert, alerts
by severity and then by age, oldest first (the first fault is often the
cause of the rest); acknowledged ones sink below the rest of their host,
dimmed, with who acknowledged them. Silenced alerts are hidden until their
silence ends, and counted.

Below the list: the selected alert in full (advice, evidence) and the
processes it touches, from the host's latest sample: on its GPU, or every
process of the host for a host-level alert, with users and Slurm jobs.

From an alert: ``enter`` opens its host with its GPU selected; ``D`` ``R``
``N`` and ``K`` open the same guarded action dialog as the host screen
(an :class:`~gputui.ui.screens.seam.OpenAction` the app answers), so refusals read and are audited the same
(``K`` only on a process picked in the alert's process list, never on a
cursor left there from another alert; ``D`` on a lost GPU says up front that
the host will refuse and that ``N`` drains the node);
``a`` acknowledges, ``s`` silences (both recorded in the audit log), ``E``
writes the incident report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable, Static

from gputui.actions.audit import AuditError
from gputui.actions.guard import Outcome
from gputui.actions.model import Target
from gputui.actions.render import outcome_words
from gputui.fleet.pace import JUDGE_EVERY_S
from gputui.fleet.store import FleetStore, HostState
from gputui.frames import ProcessInfo
from gputui.health.model import Alert, Severity
from gputui.protocol import MAX_REASON_CHARS
from gputui.render import age_words, fmt
from gputui.ui.dialogs.remark_dialog import RemarkScreen, remark_words, remarks_section
from gputui.ui.panels.allocation import short, until_words
from gputui.ui.panels.base import asciify_scrollbars
from gputui.ui.screens.host_screen import HostScreen, lost_hint
from gputui.ui.screens.seam import AppParts, OpenAction
from gputui.ui.state.alerts import AlertBoard, count_words, severity_style
from gputui.ui.widgets.footer import KeysFooter
from gputui.ui.widgets.palette import Palette, ascii_mode, celsius
from gputui.ui.widgets.slurm_text import slurm_jobs_given
from gputui.ui.widgets.table_sync import Cell, sync_rows

REFRESH_S = 1.0
DETAIL_MAX_H, DETAIL_MIN_H = 8, 2  # the selected alert's pane, its top border included
OTHER_ROWS = 11  # title, alert list (6), processes (heading, header, 1 row), footer
ALERT_COLUMNS = ("Severity", "Where", "Since", "Alert", "Advice")  # the long ones last: the screen cuts them
PROC_COLUMNS = ("PID", "User", "GPU", "GPU mem", "Job", "Command")
REPORT_DIR = "~/.local/state/gputui/reports"
HOST_ROW = "host:"  # row keys: "host:<name>" for a host's line, "alert:<key>" for an alert
ALERT_ROW = "alert:"


def since_words(since: float, now: float) -> str:
    """ "12m ago 03:14": how long, and the clock time (with the date when not today)."""
    return f"{age_words(max(0.0, now - since))} ago {until_words(since, now)}"


def grouped(alerts: list[Alert], acked: set[str]) -> list[tuple[str, list[Alert]]]:
    """Alerts by host; hosts by their worst alert, alerts by (acknowledged last, severity, oldest first)."""

    def rank(a: Alert) -> tuple[bool, int, float, str]:
        return (a.key in acked, -a.severity, a.since, a.key)

    hosts: dict[str, list[Alert]] = {}
    for a in alerts:
        hosts.setdefault(a.host, []).append(a)
    for group in hosts.values():
        group.sort(key=rank)
    return sorted(hosts.items(), key=lambda item: (rank(item[1][0]), item[0]))


def write_report(text: str, now: float, folder: str = REPORT_DIR) -> Path:
    """``incident-<time>.md`` in the reports folder, or in the current one when that cannot be written."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    problem: OSError | None = None
    for where in (Path(folder).expanduser(), Path.cwd()):
        try:
            where.mkdir(parents=True, exist_ok=True)
            for n in range(1, 100):
                path = where / (f"incident-{stamp}.md" if n == 1 else f"incident-{stamp}-{n}.md")
                try:
                    with open(path, "x", encoding="utf-8") as out:
                        out.write(text)
                    return path
                except FileExistsError:
                    continue
        except OSError as exc:
            problem = exc
    raise OSError(f"cannot write the report: {problem}")


class TriageScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back", show=False),  # the footer keeps its room for the actions
        # The tables' own enter would only select the row: here it opens the alert's GPU, from either table.
        Binding("enter", "open", "Open", priority=True),
        Binding("a", "acknowledge", "Ack"),
        Binding("s", "silence", "Silence"),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("E", "export", "Report", key_display="E"),
        Binding("D", "act('drain')", "Drain", key_display="D"),
        Binding("R", "act('reserve')", "Reserve", key_display="R", show=False),
        Binding("N", "act('drain-node')", "Drain node", key_display="N"),
        Binding("K", "act('kill')", "Kill", key_display="K"),
        # Textual's own focus keys, bound here so that help lists them: the
        # way from the alerts to the alert's process list (for K) and back.
        Binding("tab", "app.focus_next", "Alerts / processes", show=False),
        Binding("shift+tab", "app.focus_previous", "Alerts / processes", show=False),
    ]

    def __init__(
        self,
        store: FleetStore,
        board: AlertBoard,
        refresh_now: Callable[[], None] | None = None,
        parts: AppParts | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.board = board
        self.refresh_now = refresh_now  # evaluates the engine now (the app's tick)
        self.parts = parts or AppParts(board=board)  # the action desk, and what the hosts opened from here read
        self.order: list[str] = []  # row keys, as in the table
        self.alert_at: dict[str, Alert] = {}  # row key -> alert
        self.host_at: dict[str, str] = {}  # row key -> host
        self.process_at: dict[str, tuple[int, ProcessInfo]] = {}  # process row key -> (GPU, process)
        self.procs_of: str | None = None  # the alert row whose processes the process list shows

    def compose(self) -> ComposeResult:
        yield Static(id="triage-title")
        yield DataTable(id="triage-alerts", cursor_type="row")
        yield Static(id="triage-detail")
        yield Static(id="triage-procs-heading")
        yield DataTable(id="triage-procs", cursor_type="row", zebra_stripes=True)
        yield KeysFooter()

    def on_mount(self) -> None:
        for table, columns in ((self.alert_table, ALERT_COLUMNS), (self.proc_table, PROC_COLUMNS)):
            table.add_columns(*columns)
            if ascii_mode(self.app):
                asciify_scrollbars(table)
        self.update_view()
        self.alert_table.focus()
        self.set_interval(REFRESH_S, self.update_view)

    def on_resize(self, event: events.Resize) -> None:
        """On a short terminal the detail gives way, so the alert list keeps its rows."""
        detail = self.query_one("#triage-detail", Static)
        detail.styles.max_height = max(DETAIL_MIN_H, min(DETAIL_MAX_H, event.size.height - OTHER_ROWS))

    @property
    def alert_table(self) -> DataTable[Cell]:
        return self.query_one("#triage-alerts", DataTable)

    @property
    def proc_table(self) -> DataTable[Cell]:
        return self.query_one("#triage-procs", DataTable)

    # -- what is selected ------------------------------------------------------
    def cursor_key(self) -> str | None:
        table = self.alert_table
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def selected_alert(self) -> Alert | None:
        key = self.cursor_key()
        return self.alert_at.get(key) if key is not None else None

    def selected_host(self) -> str | None:
        key = self.cursor_key()
        return self.host_at.get(key) if key is not None else None

    def selected_process(self) -> tuple[int, ProcessInfo] | None:
        """The process the operator picked: under the cursor of the selected alert's process
        list, while that list has the focus (never a cursor left there from another alert)."""
        table = self.proc_table
        if not table.row_count or not table.has_focus or self.procs_of != self.cursor_key():
            return None
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        return self.process_at.get(key)

    def select_alert(self, key: str) -> bool:
        """Put the cursor on the alert with this key (tests, the palette); False when it is not listed."""
        row = ALERT_ROW + key
        if row not in self.order:
            return False
        self.alert_table.move_cursor(row=self.order.index(row), animate=False)
        self.show_detail()
        return True

    # -- drawing ---------------------------------------------------------------
    def update_view(self) -> None:
        pal = Palette.of(self.app)
        now = self.board.clock()
        self.board.refilter()  # silences end on time, not only on the app's next tick
        self.query_one("#triage-title", Static).update(self.title_line(pal))
        rows: dict[str, tuple[Cell, ...]] = {}
        alert_at: dict[str, Alert] = {}
        host_at: dict[str, str] = {}
        clock = self.store.clock()
        for host, alerts in grouped(self.board.shown, set(self.board.acks)):
            key = HOST_ROW + host
            rows[key] = self.host_row(host, alerts, clock, pal)
            host_at[key] = host
            for a in alerts:
                key = ALERT_ROW + a.key
                rows[key] = self.alert_row(a, now, pal)
                alert_at[key], host_at[key] = a, host
        self.alert_at, self.host_at = alert_at, host_at
        table = self.alert_table
        if list(rows) == self.order:
            sync_rows(table, rows)  # same alerts in the same order: cells updated in place
        else:
            self.rebuild(table, rows)
        self.show_detail()

    def rebuild(self, table: DataTable[Cell], rows: dict[str, tuple[Cell, ...]]) -> None:
        """The list changed: refill it, keeping the cursor on its alert (or near where it was)."""
        before, at = self.cursor_key(), table.cursor_row
        first_time = not self.order
        table.clear()
        for key, cells in rows.items():
            table.add_row(*cells, key=key)
        self.order = list(rows)
        if not self.order:
            return
        if before in rows:
            target = self.order.index(before)
        elif first_time:
            target = next((i for i, k in enumerate(self.order) if k.startswith(ALERT_ROW)), 0)  # the worst alert
        else:
            target = min(at, len(self.order) - 1)
        table.move_cursor(row=target, animate=False)

    def title_line(self, pal: Palette) -> Text:
        board = self.board
        text = Text.assemble(("Triage", pal.header), "   ", count_words(board.counts, pal))
        if board.silenced:
            text.append(f"   {board.silenced} silenced", pal.dim)
        acked = sum(1 for a in board.shown if a.key in board.acks)
        if acked:
            text.append(f"   {acked} acknowledged", pal.dim)
        desk = self.parts.actions
        mode = desk.mode_words() if desk is not None else None
        if mode:
            text.append(f"   {mode}", pal.warn)
        if board.in_memory:
            text.append("   acks and silences kept in memory only: no audit log (demo)", pal.dim)
        if board.error:
            text.append(f"   {board.error}", pal.bad)
        behind = self.parts.behind_words()
        if behind:
            text.append(f"   {behind}", pal.warn)
        if board.every_s > JUDGE_EVERY_S:  # while it is behind, to leave time for reading frames
            text.append(f"   alerts judged every {board.every_s:.1f} s", pal.warn)
        return text

    def host_row(self, host: str, alerts: list[Alert], clock: float, pal: Palette) -> tuple[Cell, ...]:
        """The host under Where and its state under Since: the Severity column stays as narrow as
        its words, so at 80 columns the alerts' titles keep their room."""
        record = self.store.hosts.get(host)
        counts = {s: sum(1 for a in alerts if a.severity is s) for s in Severity}
        state = Text()
        if record is not None:
            s = record.state(clock)
            colour = {HostState.LIVE: pal.ok, HostState.STALE: pal.warn, HostState.DOWN: pal.bad}.get(s, pal.dim)
            state = Text.assemble((s.value, colour), (f", {age_words(record.age_s(clock))} old", pal.dim))
        return ("", Text(host, pal.header), state, count_words(counts, pal), "")

    def alert_row(self, a: Alert, now: float, pal: Palette) -> tuple[Cell, ...]:
        ack = self.board.acks.get(a.key)
        plain = pal.dim if ack is not None else pal.text
        acked = f"  acked by {ack.by.split('@')[0]}" if ack is not None else ""  # who and the note: in the detail below
        ascii = ascii_mode(self.app)
        title = Text(short(celsius(a.title, ascii), 56 - len(acked)), plain).append(acked, pal.dim)
        advice = Text(short(celsius(a.advice, ascii), 40), plain)
        word = Text(a.severity.word, pal.dim if ack is not None else severity_style(a.severity, pal))
        return (word, Text(a.where, plain), Text(since_words(a.since, now), plain), title, advice)

    def show_detail(self) -> None:
        """The selected alert in full, and the processes on its GPU (or host)."""
        pal = Palette.of(self.app)
        alert, host = self.selected_alert(), self.selected_host()
        detail = self.query_one("#triage-detail", Static)
        if host is None:
            words = "nothing to triage: no active alerts" if not self.board.silenced else "every active alert is silenced"
            detail.update(Text(words, pal.ok if not self.board.silenced else pal.dim))
        elif alert is None:
            n = sum(1 for a in self.alert_at.values() if a.host == host)
            detail.update(
                Text.assemble(
                    (host, pal.header),
                    f": {n} alert{'s' * (n != 1)}. Enter opens the host, N drains the node.",
                )
            )
        else:
            detail.update(self.alert_detail(alert, pal))
        self.show_processes(host, alert, pal)

    def alert_detail(self, a: Alert, pal: Palette) -> Text:
        now = self.board.clock()
        ascii = ascii_mode(self.app)
        text = Text.assemble((a.severity.word.upper(), severity_style(a.severity, pal)), "  ", (a.where, pal.header))
        text.append(f"  {celsius(a.title, ascii)}", Style(bold=True))
        text.append("\nwhat to do: ", pal.accent)
        text.append(celsius(a.advice, ascii))
        behind = self.parts.behind_words()
        if behind and a.rule == "stale":
            text.append(f"\nbut the {behind}: its frames may be waiting unread here, not late from the host", pal.warn)
        if a.evidence:
            text.append("\nevidence: ", pal.accent)
            text.append(celsius("   ".join(f"{k} {v}" for k, v in a.evidence.items()), ascii))
        text.append(f"\nsince {since_words(a.since, now)}   rule {a.rule}   key {a.key}", pal.dim)
        ack = self.board.acks.get(a.key)
        if ack is not None:
            text.append("\n" + remark_words(ack), pal.dim)
        return text

    def show_processes(self, host: str | None, alert: Alert | None, pal: Palette) -> None:
        heading = self.query_one("#triage-procs-heading", Static)
        record = self.store.hosts.get(host) if host is not None else None
        found: dict[str, tuple[int, ProcessInfo]] = {}
        if record is not None:
            for g in record.gpus():
                if alert is None or alert.gpu is None or g.index == alert.gpu:
                    for p in g.processes:
                        found[f"{g.index}:{p.pid}"] = (g.index, p)
        self.process_at = found
        table = self.proc_table
        sync_rows(table, {key: proc_row(gpu, p) for key, (gpu, p) in found.items()})
        if self.procs_of != self.cursor_key():  # another alert's processes: nothing is picked in them yet
            self.procs_of = self.cursor_key()
            table.move_cursor(row=0, animate=False)
            if table.has_focus:
                self.alert_table.focus()
        if host is None:
            heading.update("")
            return
        where = alert.where if alert is not None and alert.gpu is not None else f"{host} (every GPU)"
        text = Text.assemble(("Affected processes on ", pal.header), (where, pal.header), f": {len(found)}")
        users = sorted({p.user for _, p in found.values() if p.user})
        jobs = sorted({p.slurm_job for _, p in found.values() if p.slurm_job})
        if users:
            text.append(f"   users {', '.join(users)}")
        given = slurm_jobs_given(self.store.slurm, host, alert.gpu if alert is not None else None)
        if given:  # what Slurm says holds the GPUs: the job an operator cancels or asks about
            text.append(f"   Slurm {'; '.join(given)}", pal.accent)
        elif jobs:
            text.append(f"   Slurm jobs {', '.join(jobs)}")
        if record is None or record.sample is None:
            text.append("   no sample from this host yet", pal.warn)
        else:
            now = self.store.clock()
            if record.state(now) is not HostState.LIVE:
                text.append(f"   from data {age_words(record.age_s(now))} old: the host is {record.state(now).value}", pal.warn)
        if found and table.has_focus:
            text.append("   K kills the highlighted process", pal.dim)
        elif found:
            text.append("   tab: pick a process here, then K kills it", pal.dim)
        heading.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "triage-alerts":
            self.show_detail()

    # -- keys ------------------------------------------------------------------
    def action_refresh(self) -> None:
        if self.refresh_now is not None:
            self.refresh_now()
        self.update_view()

    async def action_open(self) -> None:
        """The alert's host, with its GPU selected (the host's first GPU for a host-level alert)."""
        host = self.selected_host()
        alert = self.selected_alert()
        if host is not None and host not in self.store.hosts and alert is not None and alert.behind:
            # A jump host is not a monitored host: what can be seen of it is its hosts' connections.
            self.notify(f"{host} is a jump host, not a monitored host: the connections of the hosts behind it")
            await self.app.run_action("connections")
            return
        if host is None or host not in self.store.hosts:
            self.notify("no alert selected", severity="warning")
            return
        gpu = alert.gpu if alert is not None else None
        self.app.push_screen(HostScreen(self.store, host, self.parts, gpu=gpu))

    def action_act(self, kind: str) -> None:
        """The guarded action dialog on the alert's GPU, its host, or the process picked in its list."""
        alert, host = self.selected_alert(), self.selected_host()
        if host is None:
            self.notify("no alert selected", severity="warning")
            return
        if kind == "kill":
            targets, detail, why = self.kill_target(host)
        elif kind in ("drain-node", "resume-node"):
            targets, detail, why = [Target(host)], "", ""
        else:
            targets, detail, why = self.gpu_target(kind, host, alert)
        if not targets and self.parts.actions is not None:
            self.notify(why, severity="warning")  # the demo's own notice (no config) comes from the app
            return
        # From an alert, the alert is the reason: pre-filled, the operator's to edit.
        reason = f"{alert.title} ({alert.where})"[:MAX_REASON_CHARS] if alert is not None and kind != "kill" else ""
        self.post_message(OpenAction(kind, targets, detail, self.action_done, reason))

    def kill_target(self, host: str) -> tuple[list[Target], str, str]:
        """``K``: (targets, the dialog's detail, why there is none): only a process of the
        selected alert that the operator picked in its process list."""
        if not self.process_at:
            return [], "", "no process on this alert's GPU: nothing to kill"
        picked = self.selected_process()
        if picked is None:
            return [], "", "select a process in the alert's process list first (tab moves there)"
        gpu, p = picked
        detail = f"pid {p.pid} on GPU {gpu}, user {p.user or '?'}: {(p.command or '?')[:60]}"
        return [Target(host, pid=p.pid)], detail, ""

    def gpu_target(self, kind: str, host: str, alert: Alert | None) -> tuple[list[Target], str, str]:
        """``D`` ``R``: the alert's GPU. A lost GPU cannot be reached to act on: the dialog says
        so up front and points to the node (the lost alert's own advice)."""
        gpu = alert.gpu if alert is not None else None
        if gpu is None:
            return [], "", "this alert is about the whole host: enter opens it to pick GPUs, N drains the node"
        return [Target(host, (str(gpu),))], lost_hint(kind, self.store.hosts.get(host), [gpu]), ""

    def on_descendant_focus(self) -> None:
        self.show_detail()  # the process list's hint follows the focus

    def action_done(self, outcome: Outcome | None) -> None:
        """The dialog closed: how it ended, with its audit id (as the host screen says it)."""
        if outcome is None:
            return
        severity: SeverityLevel = "information" if outcome.ok else ("warning" if outcome.status == "cancelled" else "error")
        self.notify(f"{outcome_words(outcome)} (audit {outcome.audit_id})", severity=severity, markup=False)
        self.update_view()

    def action_acknowledge(self) -> None:
        alert = self.selected_alert()
        if alert is None:
            self.notify("move the cursor to an alert first", severity="warning")
            return
        ack = self.board.acks.get(alert.key)
        if ack is not None:
            self.notify(f"already {remark_words(ack)}", markup=False)
            return
        title = f"Acknowledge: {alert.where}  {alert.title}"
        self.app.push_screen(RemarkScreen(title, silence=False, clock=self.board.clock), partial(self.remarked, alert, False))

    def action_silence(self) -> None:
        alert = self.selected_alert()
        if alert is None:
            self.notify("move the cursor to an alert first", severity="warning")
            return
        title = f"Silence: {alert.where}  {alert.title}"
        self.app.push_screen(RemarkScreen(title, silence=True, clock=self.board.clock), partial(self.remarked, alert, True))

    def remarked(self, alert: Alert, silence: bool, answer: tuple[float | None, str] | None) -> None:
        if answer is None:
            return
        until, note = answer
        try:
            if silence and until is not None:
                remark = self.board.silence(alert, until, note)
            else:
                remark = self.board.acknowledge(alert, note)
        except AuditError as exc:
            self.notify(f"not recorded, so not done: {exc}", severity="error", timeout=15, markup=False)
            return
        where = f"(audit {remark.audit_id})" if remark.audit_id else "(kept in memory only: the demo has no audit log)"
        self.notify(f"{alert.where}: {remark_words(remark)} {where}", markup=False)
        self.update_view()

    def action_export(self) -> None:
        """The Markdown incident report, written to a file; its path is notified."""
        from gputui.health.report import markdown_report

        now = self.board.clock()
        said = {key: remark_words(r) for key, r in {**self.board.acks, **self.board.silences}.items()}
        text = markdown_report(self.store, list(self.board.alerts), now, remarks=said) + remarks_section(self.board)
        try:
            path = write_report(text, now)
        except OSError as exc:
            self.notify(str(exc), severity="error", timeout=15, markup=False)
            return
        self.notify(f"incident report written: {path}", timeout=15, markup=False)


def proc_row(gpu: int, p: ProcessInfo) -> tuple[Cell, ...]:
    def num(value: str) -> Text:
        return Text(value, justify="right")

    job = p.slurm_job or (f"container {p.container}" if p.container else "")
    return (num(str(p.pid)), fmt(p.user), num(str(gpu)), num(fmt(p.gpu_mem_mib, "{:,} MiB")), job, fmt(p.command))
