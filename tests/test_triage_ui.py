"""The triage screen as an operator meets it at 3 a.m.: the worst thing first,
one key from an alert to its GPU, acknowledgements and silences on record,
actions through the same guard as the host screen, a report on disk.

Real apps on real simulated hosts: the in-process demo fleet, or local
agents from a config (``transport = "local"``) with the audit log in the
test's tmp_path; the real health engine evaluates the real store. Every
wait is on what is on screen or on disk, never a sleep.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from gputui import config as cfg
from gputui.health.model import Alert, Severity
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.action_screen import ActionScreen
from gputui.ui.dialogs.remark_dialog import RemarkScreen
from gputui.ui.launch import configured_app, demo_app
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.screens.overview import OverviewScreen
from gputui.ui.screens.triage_screen import ALERT_ROW, TriageScreen
from tests.screen_reading import screen_lines, screen_text, static_text, summary
from tests.ui_apps import frozen_store
from tests.waiting import wait_for

SIZE = (150, 40)
AGENT_WAIT_S = 30.0  # local agents start as child processes
PLANTED = {2, 3, 5}  # the incident scenario: GPU 2 too hot, GPU 3 ECC, XID 48 and remaps, GPU 5 fallen off the bus
LOST = {5}  # alerts at once (an event); the others after the engine's hold (alert_hold_s, 10 s by default)


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's config, themes and state (reports) out of the test."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def make_app(tmp_path: Path, actions: str = "", theme: str = "gputui-dark", sim: str = "incident") -> GpuTuiApp:
    """One local simulated host ``h`` (8 GPUs), its audit log and ledger in tmp_path."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'interval = 0.2\ntheme = "{theme}"\n'
        "[thresholds]\nalert_hold_s = 1\n"  # the planted faults alert within a second, not ten
        f'[actions]\naudit_log = "{tmp_path}/audit.jsonl"\nstate_dir = "{tmp_path}/state"\n{actions}\n'
        f'[[hosts]]\nname = "h"\ntransport = "local"\nsim = "{sim}"\ngpus = 8\nsim_processes = "synthetic"\n'
    )
    return configured_app(path, cfg.load(path))


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def triage(app: GpuTuiApp) -> TriageScreen:
    screen = app.screen
    assert isinstance(screen, TriageScreen), type(screen)
    return screen


def table_lines(screen: TriageScreen) -> list[str]:
    table = screen.query_one("#triage-alerts", DataTable)
    return [" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]


def listed(screen: TriageScreen) -> list[Alert]:
    """The alerts in the list, in its order (host lines left out)."""
    return [screen.alert_at[k] for k in screen.order if k.startswith(ALERT_ROW)]


def planted_gpus(screen: TriageScreen) -> set[int]:
    return {a.gpu for a in listed(screen) if a.gpu is not None}


async def wait_for_triage(pilot: Pilot[None], app: GpuTuiApp, gpus: set[int] = PLANTED) -> TriageScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the triage screen to open by itself", AGENT_WAIT_S)
    screen = triage(app)
    await wait_for(pilot, lambda: planted_gpus(screen) >= gpus, f"alerts on GPUs {sorted(gpus)}", AGENT_WAIT_S)
    return screen


async def cursor_to(pilot: Pilot[None], screen: TriageScreen, wanted: Alert) -> None:
    """Move the list's cursor down to ``wanted`` with the arrow keys, as an operator would."""
    row = ALERT_ROW + wanted.key
    assert row in screen.order, f"{wanted.key} is not in the list: {screen.order}"
    table = screen.query_one("#triage-alerts", DataTable)
    steps = screen.order.index(row) - table.cursor_row
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps))
    chosen = screen.selected_alert()
    assert chosen is not None and chosen.key == wanted.key, (chosen, wanted)


def gpu_alert(screen: TriageScreen, gpu: int, prefer_rule: str = "") -> Alert:
    alerts = [a for a in listed(screen) if a.gpu == gpu]
    assert alerts, f"no alert on GPU {gpu}: {[a.key for a in listed(screen)]}"
    return next((a for a in alerts if a.rule == prefer_rule), alerts[0])


async def remark(pilot: Pilot[None], app: GpuTuiApp, key: str, *typed: str) -> None:
    """``a`` or ``s``, then type into the dialog's fields (tab between them) and enter."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, RemarkScreen), "the note dialog")
    for i, text in enumerate(typed):
        if i:
            await pilot.press("tab")
        await pilot.press(*("space" if c == " " else c for c in text))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the dialog to close")


def non_ascii(app: GpuTuiApp) -> list[str]:
    return [line for line in screen_lines(app) if not line.isascii()]


# -- the demo: no config -------------------------------------------------------


async def test_the_incident_demo_opens_on_triage_with_every_planted_fault() -> None:
    app = demo_app(hosts=1, gpus=None, scenario="incident", seed=0, interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app)
        alerts = listed(screen)
        assert alerts[0].severity is Severity.CRITICAL  # the worst first
        assert [a.severity for a in alerts] == sorted((a.severity for a in alerts), reverse=True)
        lines = table_lines(screen)
        assert lines[0].lstrip().startswith("gpu-01")  # the host's line (under Where), then its alerts
        for a in alerts:
            assert a.advice.strip(), f"{a.key} has no advice"
            assert any(a.where in line and a.severity.word in line for line in lines), (a.key, lines)
        # The selected alert in full, and what runs on its GPU.
        detail = static_text(screen.query_one("#triage-detail", Static))
        assert alerts[0].title in detail and alerts[0].advice[:40] in " ".join(detail.split())
        heading = static_text(screen.query_one("#triage-procs-heading", Static))
        assert f"Affected processes on {alerts[0].where}" in heading
        title = static_text(screen.query_one("#triage-title", Static))
        assert "critical" in title and "kept in memory only" in title

        # An alert on a GPU that runs jobs: its processes, users and jobs, from the store's latest sample.
        sample = app.store.hosts["gpu-01"].sample
        assert sample is not None
        running = {g.index: g.processes for g in sample.gpus if g.processes}
        busy = next(a for a in alerts if a.gpu is not None and a.gpu in running)
        assert busy.gpu is not None
        await cursor_to(pilot, screen, busy)
        table = screen.query_one("#triage-procs", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0, "the alert's GPU's processes")
        shown = {str(row.key.value) for row in table.ordered_rows}
        assert {key.split(":")[0] for key in shown} == {str(busy.gpu)}  # that GPU's processes only
        row = " ".join(str(c) for c in table.get_row_at(0))
        assert any(p.user and p.user in row for p in running[busy.gpu])

        # The demo has no config: an action key says so, as the host screen does.
        await pilot.press("D")
        await pilot.pause()
        assert isinstance(app.screen, TriageScreen)
        assert any("actions need a config file" in str(n.message) for n in app._notifications)

        # Leaving it: the overview counts the alerts; the triage is not forced back.
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), "escape to the overview")
        ticks = app.board.ticks
        await wait_for(pilot, lambda: app.board.ticks >= ticks + 2, "two more evaluations")
        assert isinstance(app.screen, OverviewScreen)
        assert "critical" in summary(app)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "t to open the triage")


async def test_enter_on_the_fallen_off_gpu_5_alert_opens_the_host_on_gpu_5() -> None:
    app = demo_app(hosts=1, gpus=None, scenario="incident", seed=0, interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app, LOST)
        xid = gpu_alert(screen, 5, prefer_rule="xid")
        await cursor_to(pilot, screen, xid)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the host screen")
        host = app.screen
        assert isinstance(host, HostScreen) and host.host == "gpu-01"

        def cursor_gpu() -> str | None:
            for table in host.query("#gpus").results(DataTable):
                if table.row_count:
                    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
            return None

        await wait_for(pilot, lambda: cursor_gpu() == "5", "the cursor on GPU 5")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "escape back to the triage")


async def test_a_healthy_demo_stays_on_the_overview() -> None:
    app = demo_app(hosts=2, gpus=None, scenario="healthy", seed=0, interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all(r.sample is not None for r in app.store.hosts.values()), "every host's first sample")
        ticks = app.board.ticks
        await wait_for(pilot, lambda: app.board.ticks >= ticks + 2, "two evaluations of the sampled fleet")
        assert isinstance(app.screen, OverviewScreen)
        assert app.board.shown == []
        assert "no alerts" in summary(app)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "t to open the triage")
        assert "no active alerts" in static_text(app.screen.query_one("#triage-detail", Static))


# -- a config: the audit log ---------------------------------------------------


async def test_acknowledge_and_silence_change_the_list_and_are_recorded(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app)
        assert "kept in memory" not in static_text(screen.query_one("#triage-title", Static))
        first = listed(screen)[0]
        await cursor_to(pilot, screen, first)
        await remark(pilot, app, "a", "on it, INC-7")
        records = audit(tmp_path)
        assert len(records) == 1
        ack = records[0]
        assert (ack["action"], ack["status"], ack["alert"], ack["note"]) == ("acknowledge", "recorded", first.key, "on it, INC-7")
        assert ack["targets"] == [first.where] and ack["until"] is None and ack["operator"]["user"]
        await wait_for(pilot, lambda: any("acked by" in line and first.where in line for line in table_lines(screen)), "acked")
        assert first.key in {a.key for a in listed(screen)}  # still listed
        assert [a.key for a in listed(screen) if a.host == first.host][-1] == first.key  # sunk below its host's others

        other = next(a for a in listed(screen) if a.key != first.key)
        await cursor_to(pilot, screen, other)
        await remark(pilot, app, "s", "30m", "known, fixed at 9")
        records = audit(tmp_path)
        silence = records[-1]
        assert (silence["action"], silence["status"], silence["alert"]) == ("silence", "recorded", other.key)
        assert silence["note"] == "known, fixed at 9"
        # "t" is the audit time rounded to the millisecond, "until" the unrounded clock at the prompt
        assert silence["until"] - silence["t"] == pytest.approx(1800, abs=5)
        await wait_for(pilot, lambda: other.key not in {a.key for a in listed(screen)}, "the silenced alert to be hidden")
        assert "1 silenced" in static_text(screen.query_one("#triage-title", Static))
        assert app.board.silenced == 1

        # A duration that is not one is said in the dialog, and nothing is recorded.
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, RemarkScreen), "the silence dialog")
        await pilot.press("s", "o", "o", "n", "enter")
        dialog = app.screen
        await wait_for(pilot, lambda: "expected a duration" in static_text(dialog.query_one("#remark-status", Static)), "why")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "escape to close the dialog")
        assert len(audit(tmp_path)) == 2

    # Restarted mid-incident, the dashboard keeps the silence (it lives in the audit log);
    # the acknowledgement ended with the session.
    again = make_app(tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, again, LOST)
        # The screen says so at its next refresh after the pass that found the alert again.
        title = screen.query_one("#triage-title", Static)
        await wait_for(
            pilot,
            lambda: again.board.silenced == 1 and "1 silenced" in static_text(title),
            "the silenced alert to be active, hidden, and counted on the title",
            AGENT_WAIT_S,
        )
        assert other.key not in {a.key for a in listed(screen)}
        assert first.key not in again.board.acks


async def test_a_drain_from_triage_goes_through_the_guard_and_is_refused_when_actions_are_off(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app)
        assert "actions off" in static_text(screen.query_one("#triage-title", Static))
        ecc = gpu_alert(screen, 3)
        await cursor_to(pilot, screen, ecc)
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen), "the action dialog")
        dialog = app.screen
        assert isinstance(dialog, ActionScreen)
        assert "Drain: h:3" in static_text(dialog.query_one("#action-title", Static))
        # The alert is the reason, pre-filled and selected: typing replaces it, End adds to it.
        given = f"{ecc.title} (h:3)"
        assert dialog.query_one("#reason", Input).value == given
        await pilot.press("end", *"; INC-7", "enter")
        await wait_for(pilot, lambda: dialog.phase == "refused", "the refusal")
        assert "refused: actions are off" in static_text(dialog.query_one("#action-status", Static))
        records = audit(tmp_path)
        expected = [("drain", "refused", ["h:3"], given + "; INC-7")]
        assert [(r["action"], r["status"], r["targets"], r["reason"]) for r in records] == expected
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the dialog to close")
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen), "the drain-node dialog")
        assert "Drain node: h" in static_text(app.screen.query_one("#action-title", Static))


async def test_on_the_console_the_triage_draws_only_ascii(tmp_path: Path) -> None:
    app = make_app(tmp_path, theme="gputui-console")
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app)
        assert app.ascii
        await pilot.pause()
        assert not non_ascii(app), non_ascii(app)
        await cursor_to(pilot, screen, listed(screen)[0])
        await remark(pilot, app, "a", "x")
        await pilot.pause()
        assert not non_ascii(app), non_ascii(app)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, RemarkScreen), "the silence dialog")
        await pilot.pause()
        assert not non_ascii(app), non_ascii(app)
        assert app.screen.query_one("#remark-for", Input).has_focus


async def test_e_writes_the_incident_report(tmp_path: Path) -> None:
    app = demo_app(hosts=1, gpus=None, scenario="incident", seed=0, interval=0.2)
    reports = tmp_path / "home" / ".local" / "state" / "gputui" / "reports"
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app, LOST)
        alerts = list(app.board.alerts)
        acked = listed(screen)[0]
        await cursor_to(pilot, screen, acked)
        await remark(pilot, app, "a", "on it, INC-7")
        await pilot.press("E")
        await wait_for(pilot, lambda: reports.is_dir() and any(reports.glob("incident-*.md")), "the report file")
        [path] = list(reports.glob("incident-*.md"))
        text = path.read_text()
        for a in alerts:
            assert a.title in text or a.key in text, a.key
        # The alert's row says who is on it, with the note, and the record says so too.
        row = next(line for line in text.splitlines() if line.startswith("|") and acked.title in line)
        assert "acknowledged by" in row and "on it, INC-7" in row, row
        assert f"`{acked.key}` acknowledged by" in text
        assert any(str(path) in str(n.message) for n in app._notifications)
        assert screen is app.screen


# -- K only on a process the operator picked; a lost GPU points to N -----------------


def notices(app: GpuTuiApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def screen_words(app: GpuTuiApp) -> str:
    return " ".join(screen_lines(app))


async def test_k_kills_only_a_process_picked_in_the_selected_alerts_list(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app)
        sample = app.store.hosts["h"].sample
        assert sample is not None
        running = {g.index for g in sample.gpus if g.processes}
        busy = next(a for a in listed(screen) if a.gpu in running)
        await cursor_to(pilot, screen, busy)
        procs = screen.query_one("#triage-procs", DataTable)
        await pilot.press("tab")  # the process on this alert's GPU, under the list's cursor
        await wait_for(pilot, lambda: procs.has_focus and procs.row_count == 1, "the alert's process list")
        await pilot.press("shift+tab")
        # Up to the host's line: every process of the host is listed, none of them picked.
        table = screen.query_one("#triage-alerts", DataTable)
        await pilot.press(*["up"] * table.cursor_row)
        assert screen.selected_alert() is None and screen.selected_host() == "h"
        await wait_for(pilot, lambda: procs.row_count > 2, "the host's processes")
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, TriageScreen), "K opened a kill dialog for a process nobody picked"
        await wait_for(pilot, lambda: any("select a process" in n for n in notices(app)), "why K did nothing")
        assert "tab: pick a process here, then K kills it" in static_text(screen.query_one("#triage-procs-heading", Static))
        # Picked in the list: that process, and no other.
        await pilot.press("tab", "down", "down")
        await wait_for(pilot, lambda: procs.cursor_row == 2, "a process picked")
        pid = str(procs.coordinate_to_cell_key(procs.cursor_coordinate).row_key.value).split(":")[1]
        await pilot.press("K")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen), "the kill dialog")
        assert f"Kill process: h:pid={pid}" in static_text(app.screen.query_one("#action-title", Static))


async def test_d_on_a_lost_gpu_points_to_draining_the_node(tmp_path: Path) -> None:
    app = make_app(tmp_path, actions='enabled = true\nbackend = "ledger"')
    async with app.run_test(size=SIZE) as pilot:
        screen = await wait_for_triage(pilot, app, LOST)
        await cursor_to(pilot, screen, gpu_alert(screen, 5, prefer_rule="lost"))
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen), "the drain dialog")
        dialog = app.screen
        assert isinstance(dialog, ActionScreen)
        assert "N drains the node" in screen_words(app)  # before any typing
        await pilot.press(*"xid", "space", *"79", "enter")
        await wait_for(pilot, lambda: dialog.phase == "refused", "the host's refusal", AGENT_WAIT_S)
        words = screen_words(app)
        assert "NVML cannot reach it" in words and "N drains the node" in words
        # The host screen, opened on that GPU from the alert, says the same.
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the dialog to close")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the host screen")
        host = app.screen
        assert isinstance(host, HostScreen)
        await wait_for(pilot, lambda: host.selected_gpus() == [5], "the cursor on GPU 5")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ActionScreen), "the drain dialog")
        await pilot.pause()
        assert "N drains the node" in screen_words(app)


# -- what opens the triage by itself, and how it reads ---------------------------------


def fake_alert(severity: Severity, n: int, gpu: int | None = 0, title: str = "", advice: str = "") -> Alert:
    return Alert(
        key=f"test:gpu-01:{n}",
        rule="test",
        severity=severity,
        host="gpu-01",
        gpu=gpu,
        title=title or f"alert number {n}",
        advice=advice or "what to do about it",
        since=1_700_000_000.0,
    )


def fake_app(alerts: list[Alert], theme: str = "gputui-dark") -> GpuTuiApp:
    """The overview on a frozen store, with a health engine that says exactly ``alerts`` (a list the test changes)."""
    return GpuTuiApp(frozen_store(1), [], theme=theme, triage_first=True, health=lambda store: list(alerts))


async def test_info_alerts_alone_never_take_the_screen() -> None:
    alerts = [fake_alert(Severity.INFO, 1, gpu=None, title="persistence mode off on 8 GPUs")]
    app = fake_app(alerts)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.board.ticks >= 3, "three evaluations")
        assert isinstance(app.screen, OverviewScreen)
        alerts.append(fake_alert(Severity.WARNING, 2))
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "a warning to open the triage")


@pytest.mark.parametrize(("theme", "unit"), [("gputui-dark", "°C"), ("gputui-console", "C")])
async def test_the_triage_writes_temperatures_in_the_themes_unit(theme: str, unit: str) -> None:
    hot = fake_alert(Severity.WARNING, 1, title="GPU 0 running hot at 88 C, 3 C below its slowdown point")
    hot = Alert(**{**hot.__dict__, "evidence": {"temp": "88 C", "slowdown at": "91 C"}})
    app = fake_app([hot], theme)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the triage")
        screen = triage(app)
        row = next(line for line in table_lines(screen) if "running hot" in line)
        detail = static_text(screen.query_one("#triage-detail", Static))
        assert f"at 88 {unit}, 3 {unit} below" in row
        assert f"temp 88 {unit}" in detail and f"slowdown at 91 {unit}" in detail


async def test_on_a_40x15_terminal_the_alert_list_keeps_its_rows() -> None:
    long = "drain it and check the node's cooling, fans, inlet temperature and the BMC log before it throttles"
    app = fake_app([fake_alert(Severity.CRITICAL, n, gpu=n, advice=long) for n in range(6)])
    async with app.run_test(size=(40, 15)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the triage")
        screen = triage(app)
        await pilot.pause()
        table = screen.query_one("#triage-alerts", DataTable)
        assert table.region.bottom <= 15 - 1  # above the footer
        rows_seen = table.scrollable_content_region.height - 1  # less the header
        assert rows_seen >= 4, f"{rows_seen} alert rows visible"
        procs = screen.query_one("#triage-procs", DataTable)
        assert procs.region.height >= 1 and procs.region.bottom <= 15 - 1


async def test_at_80_columns_a_down_host_leaves_the_alert_titles_their_room() -> None:
    title = "GPU 0 held back by the power brake 40 min"  # 41 characters: fits at 80 columns, but not with a wide column
    now = time.time()
    midnight = time.mktime((*time.localtime(now)[:3], 0, 0, 0, 0, 0, -1))
    # "10m ago 14:02": today, whenever the test runs (just after midnight the date would come too)
    since = max(now - 600, midnight + 1)
    down = Alert(**{**fake_alert(Severity.WARNING, 1, gpu=None).__dict__, "rule": "down", "since": since})
    hot = Alert(**{**fake_alert(Severity.CRITICAL, 2, title=title).__dict__, "since": since})
    app = fake_app([down, hot])
    app.store.mark_down("gpu-01", "connection refused")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "the triage")
        screen = triage(app)
        await pilot.pause()
        table = screen.query_one("#triage-alerts", DataTable)
        widths = {str(c.label): c.get_render_width(table) for c in table.columns.values()}
        assert widths["Severity"] <= len("critical") + 2, widths
        rows = [line for line in screen_text(app).splitlines() if line.startswith(" critical")]  # the list, not the detail
        assert len(rows) == 1 and title in rows[0], (widths, rows)
        assert "down, 0s old" in screen_text(app)  # the host's state, in words that fit
