"""Two operators, two dashboards, one GPU: both preview a reservation of it,
the first applies, and the second, applying what is no longer true, is told
that it changed since their preview and who holds it now, and can preview
again from the same dialog. Nothing is lost: the host's ledger keeps the
first reservation and both attempts, each dashboard's audit log its own.

Each dashboard has its own config and audit log (an operator's audit log
lives on their own machine); both reach the same simulated hosts through
local agents sharing one state dir, so one ledger per host, as two consoles
reaching one host over SSH would have. The apps run side by side in one
event loop, each driven by its own pilot, and every step waits on what is
on screen, never on a sleep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input

from gputui.ui.dialogs.action_screen import ActionScreen
from tests.ui_apps import AGENT_WAIT_S, SIZE, make_app, open_allocation, preview, start, status
from tests.waiting import wait_for

BOB_REASON = 'bob\'s "eval" run; $(touch /tmp/gputui-two-ops-pwned) `id`'


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config and themes out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "no-config.toml"))


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def preview_reserve(pilot: Pilot[None], holder: str, reason: str) -> ActionScreen:
    """Reserve the GPU under the cursor (GPU 0) for ``holder``: the form filled, the host's preview shown."""
    dialog = await start(pilot, "R", reason)
    await pilot.press("tab", "tab", "ctrl+u", *holder, "enter")  # reason -> ticket -> for (the login name, replaced)
    assert dialog.query_one("#holder", Input).value == holder
    await wait_for(pilot, lambda: dialog.phase != "asking", f"the host's preview for {holder}", AGENT_WAIT_S)
    assert dialog.phase == "preview", status(dialog) + preview(dialog)
    assert "reserve a:0" in preview(dialog) and "ledger: free" in preview(dialog)
    return dialog


async def test_two_dashboards_reserve_one_gpu_the_second_is_told_who_got_there_first(tmp_path: Path) -> None:
    alice_app = make_app(tmp_path, "enabled = true", audit="audit-alice.jsonl")
    bob_app = make_app(tmp_path, "enabled = true", audit="audit-bob.jsonl")
    async with alice_app.run_test(size=SIZE) as alice, bob_app.run_test(size=SIZE) as bob:
        await open_allocation(alice, alice_app)
        await open_allocation(bob, bob_app)
        mine = await preview_reserve(alice, "alice", "training run")
        theirs = await preview_reserve(bob, "bob", BOB_REASON)
        seen = mine.plan_now().steps[0].preview.ledger_version
        assert seen is not None and theirs.plan_now().steps[0].preview.ledger_version == seen  # both saw the same ledger

        await alice.click("#apply")
        await wait_for(alice, lambda: mine.phase == "done", "alice's apply", AGENT_WAIT_S)
        assert status(mine).startswith("applied:"), status(mine) + preview(mine)

        await bob.click("#apply")
        await wait_for(bob, lambda: theirs.phase != "applying", "bob's apply", AGENT_WAIT_S)
        said = status(theirs)
        assert said.startswith("changed since your preview: a:0 is now reserved for alice: preview again  (audit "), said
        assert f"your preview saw {seen}" in preview(theirs) and "is now reserved for alice by " in preview(theirs)
        assert theirs.phase == "form" and theirs.query_one("#preview", Button).display  # preview again, from here
        assert theirs.query_one("#apply", Button).disabled

        await bob.click("#preview")
        await wait_for(bob, lambda: theirs.phase not in ("form", "asking"), "bob's second preview", AGENT_WAIT_S)
        assert theirs.phase == "refused", status(theirs) + preview(theirs)
        assert "is reserved for alice by " in status(theirs) and "(training run)" in status(theirs)

    assert_nothing_lost(tmp_path)


def assert_nothing_lost(tmp_path: Path) -> None:
    """The host's ledger holds alice's reservation alone and both applies in its history;
    each audit log its own operator's attempts, bob's conflict with what it ran into."""
    ledger = json.loads((tmp_path / "state" / "ledger-a.json").read_text())
    assert [(g["index"], g["state"], g["for"], g["reason"]) for g in ledger["gpus"].values()] == [
        (0, "reserved", "alice", "training run")
    ]
    tries = [(h["action"], h["reason"], h["ok"]) for h in ledger["history"]]
    assert tries == [("reserve", "training run", True), ("reserve", BOB_REASON, False)]  # both applies, in order
    assert "changed since your preview" in ledger["history"][1]["error"]

    alices, bobs = records(tmp_path / "audit-alice.jsonl"), records(tmp_path / "audit-bob.jsonl")
    assert [r["status"] for r in alices] == ["started", "applied"]
    assert [r["status"] for r in bobs] == ["started", "failed", "refused"]
    failed = bobs[1]
    assert failed["reason"] == BOB_REASON and failed["for"] == "bob" and failed["hosts"]["a:0"]["conflict"] is True
    assert "changed since your preview" in failed["message"] and "reserved for alice" in failed["message"]
    assert ledger["history"][1]["audit_id"] == failed["ref"]  # the host's record and bob's name the same attempt
    assert not (tmp_path / "audit.jsonl").exists() and not Path("/tmp/gputui-two-ops-pwned").exists()
