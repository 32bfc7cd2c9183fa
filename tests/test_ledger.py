"""The host's ledger: atomic, versioned, serialised between real processes,
honest about expiry and about a file it cannot read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gputui.agent.ledger import HISTORY_MAX, LedgerFile, LedgerView
from gputui.frames import Sample, parse_frame

HOST = "h1"


def act_argv(state_dir: Path) -> list[str]:
    sim = ["--sim", "healthy", "--gpus", "2"]
    return [sys.executable, "-m", "gputui", "agent", "--act", *sim, "--state-dir", str(state_dir), "--host-name", HOST]


def request(phase: str, action: str, **fields: Any) -> dict[str, Any]:
    req: dict[str, Any] = {"v": 1, "phase": phase, "action": action, "operator": {"user": "alice", "host": "console1"}}
    req.update(reason="maintenance", gpus=[])
    req.update(fields)
    return req


def act(state_dir: Path, req: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(act_argv(state_dir), input=json.dumps(req), capture_output=True, text=True, timeout=60, check=False)
    answer: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (0 if answer["ok"] else 1), done.stderr
    return answer


def ledger(state_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state_dir / f"ledger-{HOST}.json").read_text())
    return data


def test_two_appliers_at_once_one_wins_one_conflicts(tmp_path: Path) -> None:
    preview = act(tmp_path, request("preview", "reserve", gpus=["0"], **{"for": "bob"}))
    assert preview["ok"] and preview["ledger_version"] == 0
    procs = []
    for holder in ("bob", "carol"):
        req = request("apply", "reserve", gpus=["0"], expect_version=0, **{"for": holder})
        p = subprocess.Popen(act_argv(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append((p, req))
    answers = []
    for p, req in procs:  # both are started before either is given its request
        out, _ = p.communicate(json.dumps(req), timeout=60)
        answers.append(json.loads(out))
    assert sorted(a["ok"] for a in answers) == [False, True]
    loser = next(a for a in answers if not a["ok"])
    assert loser["conflict"] is True and "preview again" in loser["error"]
    data = ledger(tmp_path)
    winner = next(a for a in answers if a["ok"])
    assert data["version"] == 2  # the win, then the refusal's history entry
    held = next(iter(data["gpus"].values()))
    assert held["for"] == winner["gpus"][0]["holder"]
    assert [h["ok"] for h in data["history"]] == [True, False]


def test_writes_are_atomic_and_every_change_is_a_version(tmp_path: Path) -> None:
    book = LedgerFile(str(tmp_path), HOST)
    for n in range(3):
        with book.locked() as txn:
            txn.set_gpu(f"GPU-{n}", {"index": n, "state": "reserved", "for": "bob"})
    with book.locked() as txn:
        pass  # a read that changes nothing writes nothing
    data = ledger(tmp_path)
    assert data["version"] == 3 and sorted(data["gpus"]) == ["GPU-0", "GPU-1", "GPU-2"]
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_history_keeps_the_last_thousand(tmp_path: Path) -> None:
    book = LedgerFile(str(tmp_path), HOST)
    with book.locked() as txn:
        for n in range(HISTORY_MAX + 5):
            txn.add_history({"n": n})
    history = ledger(tmp_path)["history"]
    assert len(history) == HISTORY_MAX and history[0]["n"] == 5


def test_expired_reservations_are_dropped_and_recorded(tmp_path: Path) -> None:
    book = LedgerFile(str(tmp_path), HOST)
    with book.locked() as txn:
        txn.set_gpu("GPU-x", {"index": 0, "state": "reserved", "for": "bob", "by": "alice", "until": time.time() + 3600})
        txn.set_gpu("GPU-y", {"index": 1, "state": "reserved", "for": "eve", "by": "alice", "until": time.time() - 1})
    view = LedgerView(str(tmp_path), HOST).summary()
    assert view is not None and list(view["gpus"]) == ["0"]  # the stream never shows an expired hold
    with book.locked() as txn:
        assert txn.gpu("GPU-y") is None and txn.gpu("GPU-x") is not None
        seen = txn.version  # what a preview reports and its apply then expects
    data = ledger(tmp_path)
    assert data["version"] == seen  # the expiry is on disk, not a change still to come
    assert data["history"][-1]["action"] == "expire" and data["history"][-1]["gpus"] == [1]
    assert "eve" in data["history"][-1]["reason"]


def test_a_corrupt_ledger_is_kept_aside_and_named(tmp_path: Path) -> None:
    path = tmp_path / f"ledger-{HOST}.json"
    act(tmp_path, request("apply", "reserve", gpus=["1"], **{"for": "bob"}))
    path.write_text('{"version": 3, "gpus": {"GPU-1": {"state": "res')  # a torn edit by hand
    bad = path.read_bytes()
    view = LedgerView(str(tmp_path), HOST).summary()
    assert view is not None and "unreadable" in view["error"]
    answer = act(tmp_path, request("apply", "reserve", gpus=["0"], **{"for": "carol"}))
    assert not answer["ok"] and "corrupt" in answer["error"]
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and str(aside[0]) in answer["error"]
    assert aside[0].read_bytes() == bad  # nothing lost
    assert ledger(tmp_path)["history"][-1]["ok"] is False  # the refusal is on record in the new ledger
    again = act(tmp_path, request("apply", "reserve", gpus=["0"], **{"for": "carol"}))
    assert again["ok"], again["error"]


def test_the_streaming_agent_carries_the_ledger_in_its_samples(tmp_path: Path) -> None:
    act(tmp_path, request("apply", "reserve", gpus=["1"], until=time.time() + 600, **{"for": "bob"}))
    argv = [sys.executable, "-m", "gputui", "agent", "--sim", "healthy", "--gpus", "2", "--sim-processes", "synthetic"]
    out = subprocess.run(
        [*argv, "--once", "--state-dir", str(tmp_path), "--host-name", HOST],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sample = parse_frame(out.stdout.splitlines()[-1])
    assert isinstance(sample, Sample) and sample.ledger is not None
    assert sample.ledger.version == 1
    held = sample.ledger.gpus["1"]
    assert (held.state, held.holder, held.by, held.reason) == ("reserved", "bob", "alice@console1", "maintenance")
    os.unlink(tmp_path / f"ledger-{HOST}.json")
    out = subprocess.run([*argv, "--once"], capture_output=True, text=True, timeout=60, check=True)
    sample = parse_frame(out.stdout.splitlines()[-1])
    assert isinstance(sample, Sample) and sample.ledger is None
