"""Reasons and tickets of any length: refused where they are typed, and a
ledger that holds long texts anyway (written by hand, or by an agent from
before the caps) never makes a host's frames big enough to take it down."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Input

from gputui.agent.main import FrameWriter
from gputui.frames import ErrorFrame, Sample, parse_frame
from gputui.protocol import MAX_FRAME_BYTES, MAX_REASON_CHARS, MAX_TICKET_CHARS
from gputui.transport.base import LinkError
from gputui.transport.local import LocalLink
from tests.act_agent import act, request
from tests.action_cli import audit, gputui, write_config
from tests.ui_apps import make_app, open_allocation, start, status
from tests.waiting import wait_for

PASTED_LOG = "kernel: NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus. " * 1500  # ~100 KB


def test_the_cli_refuses_a_reason_or_ticket_over_the_cap_and_does_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "enabled = true")
    r = gputui(config, "drain", "a:0", "--reason", "x" * (MAX_REASON_CHARS + 1), "--yes")
    assert r.returncode == 2
    assert f"the reason is {MAX_REASON_CHARS + 1} characters; at most {MAX_REASON_CHARS}" in r.stderr
    r = gputui(config, "drain", "a:0", "--reason", "xid 79", "--ticket", "T" * 100, "--yes")
    assert r.returncode == 2 and f"at most {MAX_TICKET_CHARS}" in r.stderr
    # Typed at the prompt: the same refusal.
    r = gputui(config, "drain", "a:0", stdin=PASTED_LOG + "\n")
    assert r.returncode == 2 and "at most" in r.stderr
    assert not (tmp_path / "state" / "ledger-a.json").exists()
    r = gputui(config, "drain", "a:0", "--reason", "x" * MAX_REASON_CHARS, "--yes")
    assert r.returncode == 0, r.stderr  # the cap itself is allowed
    assert audit(tmp_path)[-1]["status"] == "applied"


def test_the_host_refuses_a_long_reason_from_any_console(tmp_path: Path) -> None:
    answer = act(tmp_path, request("apply", "drain", gpus=["0"], reason=PASTED_LOG))
    assert not answer["ok"] and f"at most {MAX_REASON_CHARS}" in answer["error"]
    answer = act(tmp_path, request("apply", "drain-node", reason="fan", ticket="T" * 1000))
    assert not answer["ok"] and "the ticket is 1000 characters" in answer["error"]
    ledger = tmp_path / "ledger-h1.json"
    held = json.loads(ledger.read_text())["gpus"] if ledger.exists() else {}
    assert held == {}


def long_ledger(state_dir: Path, host: str, gpus: int) -> None:
    """A ledger as an older agent would have written it: every GPU and the node held, each with a pasted log."""
    entries = {
        f"GPU-{i:08d}-0000-0000-0000-000000000000": {
            "index": i,
            "state": "drained",
            "by": "alice@console1",
            "reason": PASTED_LOG,
            "since": 1.0,
            "backend": "ledger",
        }
        for i in range(gpus)
    }
    node = {"state": "drained", "by": "alice", "reason": PASTED_LOG, "ticket": PASTED_LOG, "since": 1.0, "backend": "ledger"}
    data = {"version": 7, "host": host, "gpus": entries, "node": node, "history": []}
    (state_dir / f"ledger-{host}.json").write_text(json.dumps(data))


def test_a_ledger_full_of_long_reasons_keeps_samples_small(tmp_path: Path) -> None:
    long_ledger(tmp_path, "h", 8)
    argv = [sys.executable, "-m", "gputui", "agent", "--sim", "healthy", "--gpus", "8", "--count", "2"]
    done = subprocess.run(
        [*argv, "--state-dir", str(tmp_path), "--host-name", "h"], capture_output=True, text=True, timeout=60, check=True
    )
    samples = [line for line in done.stdout.splitlines() if '"type":"sample"' in line]
    assert len(samples) == 2
    # 8 GPUs and the node each with a 100 KB reason (900 KB uncut), yet a
    # sample stays within a few KiB of one without a ledger (about 7 KiB).
    assert max(len(line) for line in samples) < 12 * 1024
    frame = parse_frame(samples[0])
    assert isinstance(frame, Sample) and frame.ledger is not None and frame.ledger.node is not None
    reason = frame.ledger.gpus["3"].reason or ""
    assert reason.startswith("kernel: NVRM: Xid") and reason.endswith("...")
    assert frame.ledger.node.state == "drained"
    # The ledger itself keeps every word.
    assert json.loads((tmp_path / "ledger-h.json").read_text())["node"]["reason"] == PASTED_LOG


def test_a_frame_over_the_limit_is_replaced_by_an_error_naming_the_big_part() -> None:
    out = io.StringIO()
    writer = FrameWriter(out)
    writer.write({"type": "sample", "v": 1, "t": 1.0, "seq": 0, "gpus": [], "ledger": {"blob": "x" * MAX_FRAME_BYTES}})
    line = out.getvalue()
    assert len(line) < 1024
    frame = parse_frame(line)
    assert isinstance(frame, ErrorFrame) and not frame.fatal
    assert frame.message.startswith("a sample frame of 1024 KiB was not sent")
    assert "'ledger' 1024 KiB" in frame.message


async def test_a_line_over_the_limit_from_a_host_says_what_it_was() -> None:
    big = 'import sys; sys.stdout.write(\'{"type":"sample","v":1,"gpus":"\' + "x" * (2 << 20) + \'"}\\n\')'
    link = LocalLink("big", [sys.executable, "-c", big])
    with pytest.raises(LinkError) as caught:
        async for _ in link.lines():
            pass
    assert str(caught.value) == "host sent a 'sample' frame of more than 1024 KiB (the frame limit): connection reset"


async def test_the_dialog_refuses_a_pasted_log_as_a_reason(tmp_path: Path) -> None:
    app = make_app(tmp_path, "enabled = true")
    async with app.run_test(size=(150, 40)) as pilot:
        await open_allocation(pilot, app)
        dialog = await start(pilot, "D", "")
        dialog.query_one("#reason", Input).value = PASTED_LOG  # as a paste leaves it
        await pilot.press("enter")
        await wait_for(pilot, lambda: "at most" in status(dialog), "the refusal on the status line")
        assert dialog.phase == "form" and app.screen is dialog  # still open, the paste still there to cut
        assert f"at most {MAX_REASON_CHARS}" in status(dialog)
    assert not (tmp_path / "state" / "ledger-a.json").exists()
