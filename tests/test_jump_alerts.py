"""A jump host down is one critical alert naming the hosts behind it, not one warning per host.

The store is filled the way the transport fills it (``set_via`` when a host
connects or fails, ``mark_down`` with the failed hop from the SSH link's
error), and in the last tests by the real SSH link itself, through an
ssh_config whose ProxyJump points at a port nobody listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from gputui import config as cfg
from gputui.fleet.store import FleetStore
from gputui.frames import Hello, parse_frame
from gputui.health.engine import HealthEngine
from gputui.health.model import Alert, Severity
from gputui.protocol import PROTOCOL_VERSION
from gputui.snapshot import collect
from gputui.sources.fleet import sources_for
from gputui.ui.state.alerts import AlertBoard

T0 = 1_760_000_000.0
JUMP = "bastion"
HOP_ERROR = "jump host bastion: no answer from 10.0.0.1:22 within 10s"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Fleet:
    """Hosts in a store, some behind a jump host, with clocks the test moves."""

    def __init__(self) -> None:
        self.wall = Clock(T0)
        self.mono = Clock(1000.0)
        self.store = FleetStore(clock=self.mono)

    def live(self, name: str, via: tuple[str, ...] = ()) -> None:
        self.store.add_host(name)
        self.store.mark_connecting(name)
        self.store.set_via(name, via)
        hello = {"type": "hello", "v": PROTOCOL_VERSION, "t": self.wall.t, "agent_version": "0.1", "host": name,
                 "interval_s": 1.0, "gpus": []}  # fmt: skip
        frame = parse_frame(json.dumps(hello))
        assert isinstance(frame, Hello)
        self.store.apply(name, frame)

    def down(self, name: str, via: tuple[str, ...], error: str = HOP_ERROR, hop: str | None = JUMP) -> None:
        self.store.add_host(name)
        self.store.mark_connecting(name)
        self.store.set_via(name, via)
        self.store.mark_down(name, error, hop=hop)

    def later(self, seconds: float) -> None:
        self.wall.t += seconds
        self.mono.t += seconds

    def engine(self, hold_s: float = 0.0, clear_s: float = 0.0) -> HealthEngine:
        return HealthEngine(clock=self.wall, hold_s=hold_s, clear_s=clear_s)


def rules(alerts: list[Alert]) -> list[tuple[str, str]]:
    return sorted((a.rule, a.host) for a in alerts)


def test_hosts_cut_off_by_one_jump_host_are_one_critical_alert_naming_them() -> None:
    fleet = Fleet()
    fleet.live("gpu-direct")
    for name in ("gpu-a", "gpu-b", "gpu-c"):
        fleet.down(name, (JUMP,))
    alerts = fleet.engine().evaluate(fleet.store)
    assert rules(alerts) == [("jump", JUMP)]  # no "down" warning for gpu-a, gpu-b, gpu-c
    alert = alerts[0]
    assert alert.severity is Severity.CRITICAL
    assert alert.title == "jump host bastion unreachable: 3 hosts behind it (gpu-a, gpu-b, gpu-c)"
    assert alert.behind == ("gpu-a", "gpu-b", "gpu-c")
    assert alert.evidence["error"] == HOP_ERROR
    assert "bring back the jump host bastion" in alert.advice


def test_the_hosts_behind_count_as_critical_on_the_overview() -> None:
    fleet = Fleet()
    fleet.live("gpu-direct")
    for name in ("gpu-a", "gpu-b"):
        fleet.down(name, (JUMP,))
    board = AlertBoard(fleet.engine().evaluate, clock=fleet.wall)
    board.tick(fleet.store)
    assert board.host_worst == {JUMP: Severity.CRITICAL, "gpu-a": Severity.CRITICAL, "gpu-b": Severity.CRITICAL}


def test_a_long_list_of_hosts_is_cut_short_in_the_title_but_whole_in_the_evidence() -> None:
    fleet = Fleet()
    names = [f"gpu-{i:02d}" for i in range(8)]
    for name in names:
        fleet.down(name, ("outer", JUMP))
    alert = fleet.engine().evaluate(fleet.store)[0]
    assert alert.title.endswith("8 hosts behind it (gpu-00, gpu-01, gpu-02, gpu-03, gpu-04 and 3 more)")
    assert alert.evidence["hosts behind it"] == ", ".join(names)


def test_a_host_that_gets_through_the_jump_host_means_each_failure_is_the_hosts_own() -> None:
    fleet = Fleet()
    fleet.live("gpu-ok", (JUMP,))
    fleet.down("gpu-a", (JUMP,))
    fleet.down("gpu-b", (JUMP,))
    assert rules(fleet.engine().evaluate(fleet.store)) == [("down", "gpu-a"), ("down", "gpu-b")]


def test_one_host_behind_a_jump_host_keeps_its_own_alert_and_hosts_down_for_their_own_reasons_are_not_grouped() -> None:
    fleet = Fleet()
    fleet.down("gpu-a", (JUMP,))
    fleet.down("gpu-b", (JUMP,), "jump host bastion cannot reach 10.0.1.5:22: connection refused", hop=None)
    fleet.down("gpu-c", (JUMP,), "cannot connect to 10.0.1.6:22 via bastion: no route to host", hop=None)
    alerts = fleet.engine().evaluate(fleet.store)
    assert rules(alerts) == [("down", "gpu-a"), ("down", "gpu-b"), ("down", "gpu-c")]
    assert all(a.severity is Severity.WARNING for a in alerts)


def test_down_alerts_already_on_give_way_at_once_and_the_jump_alert_clears_when_the_hosts_return() -> None:
    fleet = Fleet()
    engine = fleet.engine(hold_s=10.0, clear_s=30.0)
    fleet.down("gpu-a", (JUMP,))
    engine.evaluate(fleet.store)
    fleet.later(11)
    assert rules(engine.evaluate(fleet.store)) == [("down", "gpu-a")]
    fleet.down("gpu-b", (JUMP,))
    assert engine.evaluate(fleet.store) == []  # gpu-a's warning is explained; the jump alert holds first
    fleet.later(11)
    assert rules(engine.evaluate(fleet.store)) == [("jump", JUMP)]
    fleet.live("gpu-a", (JUMP,))
    fleet.live("gpu-b", (JUMP,))
    fleet.later(1)
    assert rules(engine.evaluate(fleet.store)) == [("jump", JUMP)]  # clears like any alert, after clear_s
    fleet.later(31)
    assert engine.evaluate(fleet.store) == []


def closed_port() -> int:
    """A local port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path) -> Path:
    """Three hosts behind a jump host that refuses connections, as ssh_config says."""
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host {JUMP}\n  HostName 127.0.0.1\n  Port {closed_port()}\n\nHost gpu-*\n  HostName 10.255.0.9\n  ProxyJump {JUMP}\n"
    )
    hosts = "".join(f'[[hosts]]\nname = "{n}"\n\n' for n in ("gpu-a", "gpu-b", "gpu-c"))
    path = tmp_path / "config.toml"
    path.write_text(
        f'[ssh]\nconfig_file = "{ssh_config}"\nknown_hosts = "{tmp_path / "known_hosts"}"\nconnect_timeout_s = 5\n\n{hosts}'
    )
    return path


async def test_the_ssh_transport_tells_the_store_which_jump_host_failed(tmp_path: Path) -> None:
    config = cfg.load(write_config(tmp_path))
    store = FleetStore()
    for h in config.hosts:
        store.add_host(h.name)
    await collect(sources_for(config), store, timeout=20)
    for name in ("gpu-a", "gpu-b", "gpu-c"):
        record = store.hosts[name]
        assert (record.via, record.failed_hop) == ((JUMP,), JUMP), record.error
        assert record.error is not None and record.error.startswith("jump host bastion: cannot connect to 127.0.0.1:")
    alerts = HealthEngine(hold_s=0, clear_s=0).evaluate(store)
    assert rules(alerts) == [("jump", JUMP)]


def test_gputui_check_reports_the_jump_host_once_and_exits_critical(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("GPUTUI_CONFIG", "XDG_CONFIG_HOME")}
    run = [sys.executable, "-m", "gputui", "check", "--config", str(path), "--timeout", "20"]
    table = subprocess.run(run, capture_output=True, text=True, timeout=90, env=env)
    assert table.returncode == 2, table.stdout + table.stderr
    assert table.stdout.startswith("gputui check: CRITICAL, 1 critical, 0 warning, 3 unreachable (3 hosts)")
    assert "jump host bastion unreachable: 3 hosts behind it (gpu-a, gpu-b, gpu-c)" in table.stdout
    assert "no data from" not in table.stdout  # the jump host's alert says why for all three
    data = json.loads(subprocess.run([*run, "--format", "json"], capture_output=True, text=True, timeout=90, env=env).stdout)
    assert [(a["rule"], a["severity"], a["host"], a["behind"]) for a in data["alerts"]] == [
        ("jump", "critical", JUMP, ["gpu-a", "gpu-b", "gpu-c"])
    ]


async def test_enter_on_the_jump_host_alert_opens_the_connections_of_the_hosts_behind_it() -> None:
    from gputui.ui.app import GpuTuiApp
    from gputui.ui.screens.connections import ConnectionsScreen
    from gputui.ui.screens.triage_screen import TriageScreen
    from tests.waiting import wait_for

    fleet = Fleet()
    fleet.live("gpu-direct")
    for name in ("gpu-a", "gpu-b"):
        fleet.down(name, (JUMP,))
    app = GpuTuiApp(fleet.store, [], health=fleet.engine().evaluate, triage_first=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, TriageScreen), "triage on the jump host's alert")
        screen = app.screen
        assert isinstance(screen, TriageScreen)
        await wait_for(pilot, lambda: screen.selected_alert() is not None, "the jump host's alert under the cursor")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConnectionsScreen), "the connections screen")
