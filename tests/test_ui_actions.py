"""Guarded actions from the dashboard, driven as an operator would: keys, a
reason typed, the preview read, the host name typed, Apply.

The hosts are simulated ones run as local agents (``transport = "local"``),
the ledger and the audit log live in the test's tmp_path, and everything
waits on what is on screen or on disk, never on a sleep.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.widgets import Button, Checkbox, DataTable, Static

from gputui.fleet.allocation import Alloc, GpuAllocation
from gputui.fleet.store import FleetStore
from gputui.frames import LedgerSummary
from gputui.ui.app import GpuTuiApp
from gputui.ui.panels.allocation import NO_LEDGER, AllocationPanel, ledger_of, with_ledger
from gputui.ui.screens.audit_screen import AuditScreen
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.widgets.fleet_view import FleetView
from tests.action_cli import audit
from tests.screen_reading import screen_lines, static_text
from tests.ui_apps import AGENT_WAIT_S, SIZE, make_app, open_allocation, preview, start, status
from tests.waiting import wait_for


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config and themes out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "no-config.toml"))


def non_ascii(app: GpuTuiApp) -> list[str]:
    return [line for line in screen_lines(app) if not line.isascii()]


async def test_actions_off_show_the_refusal_and_record_it(tmp_path: Path) -> None:
    app = make_app(tmp_path, "")
    async with app.run_test(size=SIZE) as pilot:
        await open_allocation(pilot, app)
        assert "actions off" in static_text(app.screen.query_one("#host-title", Static))
        dialog = await start(pilot, "D", "fan noise")
        assert "Drain: a:0" in static_text(dialog.query_one("#action-title", Static))
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase == "refused", "the refusal")
        records = audit(tmp_path)
        assert [r["status"] for r in records] == ["refused"]
        assert records[0]["targets"] == ["a:0"] and records[0]["reason"] == "fan noise"
        assert "refused: actions are off" in status(dialog)
        assert f"(audit {records[0]['id']})" in status(dialog)
        assert dialog.query_one("#apply", Button).disabled
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the dialog to close")
    assert not (tmp_path / "state" / "ledger-a.json").exists()


async def test_read_only_refuses_a_kill_from_the_processes_tab(tmp_path: Path) -> None:
    app = make_app(tmp_path, "enabled = true", read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app)
        assert "read-only" in static_text(screen.query_one("#host-title", Static))
        await pilot.press("4")
        procs = screen.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: procs.row_count > 0, "the process table to fill")
        dialog = await start(pilot, "K", "stuck job")
        assert "pid=" in static_text(dialog.query_one("#action-title", Static))
        await pilot.click("#kill-after")
        assert dialog.query_one("#kill-after").value  # type: ignore[attr-defined]
        await pilot.click("#preview")
        await wait_for(pilot, lambda: dialog.phase == "refused", "the refusal")
        assert "read-only" in status(dialog)
        records = audit(tmp_path)
        assert records[-1]["status"] == "refused" and records[-1]["action"] == "kill" and records[-1]["kill_after"] is True


async def test_drain_is_previewed_confirmed_applied_and_shown(tmp_path: Path) -> None:
    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app)
        dialog = await start(pilot, "D", "fan noise")
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase != "asking", "the host's preview", AGENT_WAIT_S)
        assert dialog.phase == "preview", status(dialog) + preview(dialog)
        assert "drain a:0" in preview(dialog)
        apply = dialog.query_one("#apply", Button)
        assert apply.disabled
        await pilot.press("b")  # the wrong host name: still no
        assert apply.disabled
        await pilot.press("backspace", "a")
        assert not apply.disabled
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase == "done", "the host's answer", AGENT_WAIT_S)
        record = audit(tmp_path)[-1]
        assert record["status"] == "applied", status(dialog) + preview(dialog)
        assert status(dialog).startswith("applied:") and f"(audit {record['id']})" in status(dialog)
        ledger = json.loads((tmp_path / "state" / "ledger-a.json").read_text())
        assert [(g["index"], g["state"]) for g in ledger["gpus"].values()] == [(0, "drained")]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")
        panel = screen.query_one(AllocationPanel)
        await wait_for(pilot, lambda: "drained" in panel.states[0].words, "the allocation tab to show the drain", AGENT_WAIT_S)
        assert "fan noise" in panel.states[0].words
        assert "1 drained" in static_text(panel.query_one("#alloc-summary", Static))


async def test_escape_after_the_preview_is_a_recorded_cancel(tmp_path: Path) -> None:
    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app)
        await pilot.press("space", "down", "space")  # mark both GPUs
        assert screen.query_one(AllocationPanel).selected_gpus() == [0, 1]
        dialog = await start(pilot, "R", "training run")
        await pilot.press("tab", "tab", "tab", *"2h", "enter")  # reason -> ticket -> for -> until
        await wait_for(pilot, lambda: dialog.phase != "asking", "the host's preview", AGENT_WAIT_S)
        assert dialog.phase == "preview", status(dialog) + preview(dialog)
        assert "reserve a:0,1" in preview(dialog)
        assert not dialog.query_one("#apply", Button).disabled  # reserve needs a yes, not a typed word
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")
    records = audit(tmp_path)
    assert [r["status"] for r in records] == ["cancelled"]
    assert records[0]["targets"] == ["a:0,1"] and records[0]["until"] is not None
    ledger = tmp_path / "state" / "ledger-a.json"
    assert not ledger.exists() or not json.loads(ledger.read_text()).get("gpus")


async def test_the_audit_screen_lists_the_records_and_checks_the_chain(tmp_path: Path) -> None:
    app = make_app(tmp_path, "")
    async with app.run_test(size=SIZE) as pilot:
        await open_allocation(pilot, app)
        for reason in ("one", "two"):
            dialog = await start(pilot, "U", reason)
            await pilot.press("enter")
            await wait_for(pilot, lambda d=dialog: d.phase == "refused", "the refusal")  # type: ignore[misc]
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, HostScreen), "the dialog to close")
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        screen = app.screen
        table = screen.query_one("#audit-log", DataTable)
        assert table.row_count == 2
        latest = " ".join(str(c) for c in table.get_row_at(0))
        assert "refused" in latest and "undrain" in latest and "two" in latest
        assert "chain intact: 2 records" in static_text(screen.query_one("#audit-verdict", Static))
        (tmp_path / "audit.jsonl").write_text((tmp_path / "audit.jsonl").read_text().replace('"one"', '"uno"'))
        await pilot.press("r")
        assert "DAMAGED" in static_text(screen.query_one("#audit-verdict", Static))


async def test_on_the_console_the_dialog_and_the_audit_screen_draw_only_ascii(tmp_path: Path) -> None:
    app = make_app(tmp_path, "", theme="gputui-console")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app)
        assert app.ascii
        await pilot.press("4")
        procs = screen.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: procs.row_count > 0, "the process table to fill")
        dialog = await start(pilot, "K", "stuck")
        await pilot.pause()
        assert not non_ascii(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase == "refused", "the refusal")
        await pilot.pause()
        assert not non_ascii(app)
        await pilot.press("escape", "A")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit screen")
        await pilot.pause()
        assert not non_ascii(app)


# -- the ledger as the sample carries it: no agent needed ---------------------


def record_with(ledger: dict[str, Any] | None) -> Any:
    """A host record whose latest sample carries ``ledger``, through the frame model."""
    summary = None if ledger is None else LedgerSummary.model_validate(ledger)
    return SimpleNamespace(ledger=summary, sample=SimpleNamespace(ledger=summary, gpus=[]), name="gt-a")


def test_ledger_words_override_the_state_but_keep_what_runs() -> None:
    summary = {
        "version": 7,
        "gpus": {
            "0": {"state": "reserved", "for": "bob", "by": "alice@c1", "until": None, "reason": "x"},
            "1": {"state": "drained", "by": "alice@c1", "reason": "fan\nnoise"},
        },
        "node": {"state": "drained", "reason": "maintenance"},
    }
    held = ledger_of(record_with(summary))
    assert held.node is not None and held.node.state == "drained"
    assert with_ledger(GpuAllocation(Alloc.FREE, "free"), held.gpus[0]).words == "reserved for bob"
    assert with_ledger(GpuAllocation(Alloc.BUSY, "busy"), held.gpus[1]).words == "drained: fan noise (busy)"
    assert with_ledger(GpuAllocation(Alloc.LOST, "lost"), held.gpus[1]).words == "lost"
    assert ledger_of(record_with(None)) == NO_LEDGER


def test_the_fleet_line_counts_held_gpus_once_per_ledger_version() -> None:
    view = FleetView(FleetStore())
    gpus = {"0": {"state": "drained"}, "1": {"state": "reserved"}, "2": {"state": "drained"}}
    assert view.held_words(record_with({"version": 3, "gpus": gpus})) == "2 drained 1 reserved"
    assert view.held_words(record_with({"version": 3, "gpus": {}})) == "2 drained 1 reserved"  # same version: cached
    assert view.held_words(record_with({"version": 4, "gpus": {}})) == ""
    assert view.held_words(record_with({"version": 5, "node": {"state": "drained"}})) == "node drained"
    assert view.held_words(record_with({"error": "ledger-gt-a.json: not JSON"})) == "ledger unreadable"


async def test_marked_processes_are_killed_in_one_guarded_step(tmp_path: Path) -> None:
    from gputui.ui.panels.processes import ProcessesPanel
    from tests.waiting import wait_until_gone

    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app)
        await wait_for(
            pilot, lambda: sum(len(g.processes) for g in app.store.hosts["a"].gpus()) >= 2, "a job on each GPU", AGENT_WAIT_S
        )
        await pilot.press("4")
        panel = screen.query_one(ProcessesPanel)
        table = panel.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: table.row_count >= 2, "the processes listed")
        user = panel.selected_processes()[0][1].user
        await pilot.press("U")  # every process of that user: here, all of them
        await wait_for(pilot, lambda: len(panel.marked) == table.row_count, "the user's processes marked")
        pids = sorted(p.pid for _, p in panel.selected_processes())
        assert len(pids) >= 2 and all(p.user == user for _, p in panel.selected_processes())
        dialog = await start(pilot, "K", "runaway")
        assert all(f"a:pid={pid}" in static_text(dialog.query_one("#action-title", Static)) for pid in pids)
        await pilot.press("tab", "tab", "space", "shift+tab", "shift+tab")  # SIGKILL if SIGTERM is ignored (one job does)
        assert dialog.query_one("#kill-after", Checkbox).value
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase != "asking", "the host's preview", AGENT_WAIT_S)
        assert dialog.phase == "preview", status(dialog) + preview(dialog)
        await pilot.press(*"a")  # one confirmation for them all: the host's name
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase == "done", "the host's answer", AGENT_WAIT_S)
        assert status(dialog).startswith("applied:"), status(dialog) + preview(dialog)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")
        assert panel.marked == set()  # applied: the marks are spent
    wait_until_gone(pids, timeout=30)
    record = audit(tmp_path)[-1]
    assert record["status"] == "applied" and sorted(record["targets"]) == sorted(f"a:pid={pid}" for pid in pids)
    assert set(record["hosts"]) == {f"a:pid={pid}" for pid in pids}  # each target on record, with its answer


async def test_grouped_by_parent_the_kill_takes_the_marked_processes_only(tmp_path: Path) -> None:
    """Grouped, a header row sits among the processes: marks and the kill must still name the right pids."""
    from gputui.ui.panels.processes import ProcessesPanel
    from tests.waiting import wait_until_gone

    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app)
        await wait_for(
            pilot, lambda: sum(len(g.processes) for g in app.store.hosts["a"].gpus()) >= 2, "a job on each GPU", AGENT_WAIT_S
        )
        await pilot.press("4", "g", "g", "g")  # grouped by parent: the stand-ins are the local agent's children
        panel = screen.query_one(ProcessesPanel)
        table = panel.query_one("#procs", DataTable)
        await wait_for(pilot, lambda: panel.grouping == "parent" and table.row_count == 3, "one group of two processes")
        rows = [str(r.key.value) for r in table.ordered_rows]
        assert rows[0].startswith("group:") and "2 processes on 2 GPUs" in str(table.get_row_at(0)[-1])
        await pilot.press(*["up"] * table.cursor_row, "space")  # the header: both processes
        await wait_for(pilot, lambda: panel.marked == set(rows[1:]), "the group marked")
        await pilot.press("down", "down", "space")  # the second process: unmarked
        await wait_for(pilot, lambda: panel.marked == {rows[1]}, "the first process alone marked")
        kept, killed = int(rows[2].split(":")[1]), int(rows[1].split(":")[1])
        dialog = await start(pilot, "K", "runaway")
        assert static_text(dialog.query_one("#action-title", Static)).count("pid=") == 1
        assert f"a:pid={killed}" in static_text(dialog.query_one("#action-title", Static))
        await pilot.press("tab", "tab", "space", "shift+tab", "shift+tab")  # SIGKILL if SIGTERM is ignored (one job does)
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase != "asking", "the host's preview", AGENT_WAIT_S)
        assert dialog.phase == "preview", status(dialog) + preview(dialog)
        await pilot.press(*"a")
        await pilot.press("enter")
        await wait_for(pilot, lambda: dialog.phase == "done", "the host's answer", AGENT_WAIT_S)
        assert status(dialog).startswith("applied:"), status(dialog) + preview(dialog)
        wait_until_gone([killed], timeout=30)
        os.kill(kept, 0)  # the process left unmarked still runs
    assert audit(tmp_path)[-1]["targets"] == [f"a:pid={killed}"]
