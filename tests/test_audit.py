"""The audit log: a hash chain that shows an edit, a deletion or a cut tail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gputui.actions.audit import AuditLog
from gputui.actions.cli import NO_LOG


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


def audit_cli(log: AuditLog, *args: str) -> subprocess.CompletedProcess[str]:
    config = log.path.parent / "c.toml"
    config.write_text(f'[actions]\naudit_log = "{log.path}"\n')
    argv = [sys.executable, "-m", "gputui", "audit", *args, "--config", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def cut_last_line(log: AuditLog) -> None:
    """What a crash or a full disk leaves: the last record only half written, no newline."""
    data = log.path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    log.path.write_bytes(data[: last + (len(data) - last) // 2])


def test_a_record_after_a_cut_off_line_is_on_a_line_of_its_own_and_chains_from_the_last_good_one(tmp_path: Path) -> None:
    log = filled(tmp_path)
    cut_last_line(log)
    after = log.append({"action": "drain", "reason": "after the crash", "status": "applied"})
    also = log.append({"action": "undrain", "reason": "and once more", "status": "applied"})
    rows = lines(log)
    assert len(rows) == 6 and json.loads(rows[4])["id"] == after["id"] and json.loads(rows[5])["id"] == also["id"]
    assert (after["seq"], after["prev"]) == (4, log.records()[2]["hash"])  # follows #3, the last good record
    assert after["after_damage"] == {"line": 4, "head_seq": 4, "head_hash": json.loads(rows[4])["after_damage"]["head_hash"]}
    assert [r["reason"] for r in log.records()[-2:]] == ["after the crash", "and once more"]
    verdict = log.verify()
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith("line 4: not a record"), verdict.problems
    listed = audit_cli(log, "list")
    assert listed.returncode == 0 and "after the crash" in listed.stdout and "and once more" in listed.stdout


def test_removing_the_damaged_line_afterwards_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    cut_last_line(log)
    log.append({"action": "drain", "reason": "after the crash", "status": "applied"})
    rows = lines(log)
    log.path.write_text("\n".join(rows[:3] + rows[4:]) + "\n", encoding="utf-8")
    verdict = log.verify()
    assert any("written after a damaged line" in p and "deleted" in p for p in verdict.problems), verdict.problems


def test_a_record_glued_onto_a_cut_line_by_older_versions_is_still_read(tmp_path: Path) -> None:
    log = filled(tmp_path)
    cut_last_line(log)
    record = {"seq": 5, "t": 1.0, "action": "drain", "reason": "glued", "prev": "0" * 64}
    with open(log.path, "a", encoding="utf-8") as out:  # as the old append did: straight after the cut
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
    assert [r["reason"] for r in log.records()][-1] == "glued"
    assert any(p.startswith("line 4: cut off") for p in log.verify().problems)


def test_verify_and_list_on_a_log_that_is_not_utf8_a_directory_or_odd_records(tmp_path: Path) -> None:
    log = filled(tmp_path)
    with open(log.path, "ab") as out:
        out.write(b'\xff\xfe lost\n{"status":null,"id":null,"targets":"x","operator":"y","t":1e300}\n')
    verified = audit_cli(log, "verify")
    assert verified.returncode == 1 and "Traceback" not in verified.stderr
    assert "line 5: not UTF-8 text (byte 0xff at column 1)" in verified.stderr
    listed = audit_cli(log, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[-1].split()[:2] == ["?", "1e+300"]
    folder = AuditLog(tmp_path / "folder" / "audit.jsonl")
    folder.path.mkdir(parents=True)
    for command in ("verify", "list"):
        done = audit_cli(folder, command)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"cannot read the audit log {folder.path}: Is a directory" in done.stderr


def test_a_missing_log_is_said_plainly_with_its_own_exit_status(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for command in ("verify", "list"):
        done = audit_cli(log, command)
        assert done.returncode == 3, done
        assert f"no audit log at {log.path}" in done.stderr and "intact" not in done.stdout
    log.head_path.write_text('{"seq": 7, "hash": "ab"}')  # the log gone, its head left behind
    gone = audit_cli(log, "verify")
    assert gone.returncode == 1 and "head says record #7 was written: the log was deleted" in gone.stderr


def test_an_empty_log_is_called_empty_not_in_agreement_with_a_head_it_lacks(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.path.write_text("")
    done = audit_cli(log, "verify")
    assert done.returncode == 0
    assert done.stdout.strip() == f"audit log {log.path} is empty: nothing has been recorded there"


def test_an_unreadable_head_is_called_unreadable(tmp_path: Path) -> None:
    log = filled(tmp_path)
    log.head_path.write_text("{not json")
    done = audit_cli(log, "verify")
    assert done.returncode == 1
    assert f"the audit head {log.head_path} is unreadable" in done.stderr and "#-1" not in done.stderr


def test_list_takes_a_positive_count(tmp_path: Path) -> None:
    log = filled(tmp_path)
    assert len(audit_cli(log, "list", "-n", "2").stdout.splitlines()) == 2
    for bad in ("0", "-34", "x"):
        done = audit_cli(log, "list", "-n", bad)
        assert done.returncode == 2 and "argument -n: expected a number of records, 1 or more" in done.stderr


def test_audit_verify_without_a_config_file_reads_the_default_log(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GPUTUI_CONFIG", "XDG_CONFIG_HOME")}
    env["HOME"] = str(tmp_path)  # no ~/.config/gputui/config.toml here
    argv = [sys.executable, "-m", "gputui", "audit", "verify"]
    none = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    default = tmp_path / ".local" / "state" / "gputui" / "audit.jsonl"
    assert none.returncode == NO_LOG, none.stderr
    assert str(default) in none.stderr and "no such file" not in none.stderr
    log = AuditLog(default)
    log.append({"action": "drain", "reason": "xid 79", "status": "applied"})
    ok = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 1 record" in ok.stdout
