"""The audit log: a hash chain that shows an edit, a deletion or a cut tail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gputui.actions.audit import AuditLog


def filled(tmp_path: Path, n: int = 4) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append({"action": "drain", "targets": [f"h{i}:0"], "reason": f'fan {i} "loud"; $(x)\nnext', "status": "applied"})
    return log


def lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines()


def test_an_untouched_log_verifies_and_records_are_numbered(tmp_path: Path) -> None:
    log = filled(tmp_path)
    verdict = log.verify()
    assert verdict.ok, verdict.problems
    assert [r["seq"] for r in log.records()] == [1, 2, 3, 4]
    assert log.records()[0]["reason"] == 'fan 0 "loud"; $(x)\nnext'


def test_an_edited_record_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    rows = lines(log)
    record = json.loads(rows[1])
    record["reason"] = "nothing to see"
    rows[1] = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    log.path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    verdict = log.verify()
    assert not verdict.ok
    assert any("line 2" in p and "edited" in p for p in verdict.problems)


def test_a_deleted_record_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    rows = lines(log)
    del rows[2]
    log.path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    verdict = log.verify()
    assert not verdict.ok
    assert any("deleted" in p for p in verdict.problems)


def test_a_cut_tail_is_detected_by_the_head(tmp_path: Path) -> None:
    log = filled(tmp_path)
    rows = lines(log)
    log.path.write_text("\n".join(rows[:-1]) + "\n", encoding="utf-8")
    verdict = log.verify()
    assert not verdict.ok
    assert any("head says the last record is #4" in p for p in verdict.problems)


def test_audit_verify_command_exit_status(tmp_path: Path) -> None:
    log = filled(tmp_path)
    config = tmp_path / "c.toml"
    config.write_text(f'[actions]\naudit_log = "{log.path}"\n')
    ok = subprocess.run(
        [sys.executable, "-m", "gputui", "audit", "verify", "--config", str(config)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "intact: 4 records" in ok.stdout
    rows = lines(log)
    log.path.write_text("\n".join(rows[:1] + rows[2:]) + "\n", encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-m", "gputui", "audit", "verify", "--config", str(config)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "damaged" in bad.stderr
