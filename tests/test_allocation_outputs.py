"""Who holds a GPU, where an operator reads it outside the live dashboard:
``gputui check --format json`` (the alert's GPU and the whole fleet) and a
recording played back with ``gputui replay``.

Real agents on two local simulated hosts (one healthy, one with the incident
scenario's faults), a real ledger written by ``gputui reserve --yes`` with a
reason full of quotes and shell syntax, read back verbatim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gputui.snapshot import to_json
from gputui.ui.panels.allocation import AllocationPanel
from tests.action_cli import gputui
from tests.screen_reading import screen_text
from tests.ui_apps import AGENT_WAIT_S, SIZE, open_allocation
from tests.waiting import wait_for

PWNED = Path("/tmp/gputui-alloc-outputs-pwned")
HOSTILE = f"ECC on \"3\" isn't ours; $(touch {PWNED}) `id` && echo 'done'"
XID_GPU = 3  # the incident scenario's GPU with ECC errors and an XID
LOST_GPU = 5


def write_config(tmp: Path) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f'[actions]\nenabled = true\naudit_log = "{tmp}/audit.jsonl"\nstate_dir = "{tmp}/state"\n'
        '[[hosts]]\nname = "a"\ntransport = "local"\nsim = "healthy"\ngpus = 2\n'
        '[[hosts]]\nname = "c"\ntransport = "local"\nsim = "incident"\n'
    )
    return path


@pytest.fixture(scope="module")
def reserved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config, with GPU 3 of the faulty host reserved for bob."""
    tmp = tmp_path_factory.mktemp("alloc-out")
    config = write_config(tmp)
    PWNED.unlink(missing_ok=True)
    r = gputui(config, "reserve", f"c:{XID_GPU}", "--for", "bob", "--reason", HOSTILE, "--ticket", "OPS-7", "--yes")
    assert r.returncode == 0, r.stderr
    return config


@pytest.fixture(scope="module")
def checked(reserved: Path) -> dict[str, Any]:
    r = gputui(reserved, "check", "--format", "json")
    assert r.returncode == 2, r.stdout + r.stderr  # the incident's faults are critical
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def test_the_alert_on_a_reserved_gpu_says_who_holds_it_and_why_verbatim(checked: dict[str, Any]) -> None:
    alerts = [a for a in checked["alerts"] if a["host"] == "c" and a["gpu"] == XID_GPU]
    assert alerts, [(a["host"], a["gpu"]) for a in checked["alerts"]]
    for alert in alerts:
        held = alert["allocation"]
        assert (held["state"], held["holder"], held["ticket"]) == ("reserved", "bob", "OPS-7")
        assert held["reason"] == HOSTILE
        assert held["by"] and "@" in held["by"] and isinstance(held["version"], int)
    lost = next(a for a in checked["alerts"] if a["rule"] == "lost")
    assert (lost["gpu"], lost["allocation"]["state"]) == (LOST_GPU, "lost")
    assert not PWNED.exists()


def test_check_lists_every_hosts_gpus_as_the_snapshot_does(reserved: Path, checked: dict[str, Any]) -> None:
    """Same object, same code: a script may read either command."""
    fleet = {h["name"]: h for h in checked["fleet"]}
    assert list(fleet) == ["a", "c"]
    assert all(h["state"] == "live" and h["node"] is None and h["ledger_error"] is None for h in fleet.values())
    assert [g["allocation"]["state"] for g in fleet["a"]["gpus"]] == ["busy", "busy"]  # the stand-in jobs
    r = gputui(reserved, "snapshot", "--format", "json")
    assert r.returncode == 0, r.stderr
    snap = {h["name"]: h for h in json.loads(r.stdout)["hosts"]}
    for name in ("a", "c"):
        mine = [(g["index"], g["uuid"]) for g in fleet[name]["gpus"]]
        assert mine == [(g["index"], g["uuid"]) for g in snap[name]["gpus"]]
    held = {g["index"]: g["allocation"] for g in snap["c"]["gpus"]}
    assert next(g for g in fleet["c"]["gpus"] if g["index"] == XID_GPU)["allocation"] == held[XID_GPU]


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's own config, themes and state out of what is on screen."""
    monkeypatch.setenv("GPUTUI_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture
def held_recording(reserved: Path, tmp_path: Path) -> Path:
    """Four seconds of the fleet, GPU 3 of host c reserved all along, as ``gputui record`` writes it."""
    path = tmp_path / "held.gtrec"
    r = gputui(reserved, "record", "-o", str(path), "--duration", "4")
    assert r.returncode == 0, r.stderr
    assert not PWNED.exists()
    return path


async def test_a_replayed_recording_shows_the_reservation_with_its_holder_and_reason(held_recording: Path) -> None:
    from gputui.ui.launch import replay_app

    app = replay_app(held_recording, speed=16.0)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app, "c")
        panel = screen.query_one(AllocationPanel)
        await wait_for(pilot, lambda: XID_GPU in panel.states, "GPU 3 in the allocation tab", AGENT_WAIT_S)
        state = panel.states[XID_GPU]
        assert state.words.startswith("reserved for bob"), state.words
        assert state.ledger is not None and state.ledger.reason == HOSTILE and state.ledger.ticket == "OPS-7"
        assert "reserved for bob" in screen_text(app)
        assert "1 reserved" in screen_text(app)
        held = {g["index"]: g["allocation"] for h in to_json(app.store)["hosts"] if h["name"] == "c" for g in h["gpus"]}
        assert (held[XID_GPU]["state"], held[XID_GPU]["holder"], held[XID_GPU]["reason"]) == ("reserved", "bob", HOSTILE)
