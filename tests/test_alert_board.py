"""What the dashboard shows of the engine's alerts once the operator has
acknowledged or silenced some: nothing that got worse stays hidden."""

from __future__ import annotations

from pathlib import Path

from gputui.actions.audit import AuditLog
from gputui.actions.model import Operator
from gputui.health.model import Severity
from gputui.ui.state.alerts import AlertBoard
from tests.health_data import Fleet, gpu

PENDING = {"correctable": 0, "uncorrectable": 1, "pending": True, "failure": False}
FAILED = {"correctable": 0, "uncorrectable": 9, "pending": False, "failure": True}


def board_on(fleet: Fleet, audit: AuditLog | None = None) -> AlertBoard:
    engine = fleet.engine(hold_s=0, clear_s=0)
    return AlertBoard(engine.evaluate, audit, Operator("op", "console1"), clock=fleet.wall)


def test_a_silenced_warning_that_turns_critical_is_shown_again() -> None:
    fleet = Fleet()
    board = board_on(fleet)
    fleet.sample(gpu(remapped_rows=PENDING))
    board.tick(fleet.store)
    (pending,) = board.shown
    assert pending.severity is Severity.WARNING
    board.silence(pending, fleet.wall.t + 86400, "reset at the next maintenance")
    assert board.shown == [] and board.silenced == 1
    fleet.sample(gpu(remapped_rows=FAILED))  # same alert (same key), now critical
    board.tick(fleet.store)
    assert [(a.key, a.severity) for a in board.shown] == [(pending.key, Severity.CRITICAL)]
    assert board.counts[Severity.CRITICAL] == 1 and board.host_worst == {pending.host: Severity.CRITICAL}


def test_an_acknowledgement_ends_when_the_alert_gets_worse(tmp_path: Path) -> None:
    fleet = Fleet()
    board = board_on(fleet, AuditLog(tmp_path / "audit.jsonl"))
    fleet.sample(gpu(temp_c=85))
    board.tick(fleet.store)
    (hot,) = board.shown
    board.acknowledge(hot, "on it")
    fleet.sample(gpu(temp_c=86))
    board.tick(fleet.store)
    assert hot.key in board.acks  # no worse: still acknowledged
    fleet.sample(gpu(temp_c=91))  # near shutdown
    board.tick(fleet.store)
    assert board.shown[0].severity is Severity.CRITICAL and hot.key not in board.acks
