"""``gputui snapshot`` end to end: real processes, the output an operator reads."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gputui.fleet.store import FleetStore, HostState
from gputui.snapshot import SCHEMA, collect
from gputui.sources.base import AgentLines
from gputui.transport.local import LocalLink

SAMPLE_KEYS = {
    "util_pct",
    "mem_util_pct",
    "mem_used_mib",
    "mem_total_mib",
    "temp_c",
    "mem_temp_c",
    "power_w",
    "power_limit_w",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "fan_pct",
    "pstate",
    "throttle",
    "ecc",
    "retired_pages",
    "remapped_rows",
    "pcie_rx_kib_s",
    "pcie_tx_kib_s",
    "compute_mode",
    "processes",
}
HOST_KEYS = {"name", "state", "age_s", "driver_version", "gpus"}
LOST_GPU = 5


def env() -> dict[str, str]:
    """This environment without a config chosen from outside the test."""
    return {k: v for k, v in os.environ.items() if k not in ("GPUTUI_CONFIG", "XDG_CONFIG_HOME")}


def gputui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gputui", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env(),
    )


def snapshot_json(*args: str, expect_rc: int = 0) -> dict[str, Any]:
    result = gputui("snapshot", *args, "--format", "json")
    assert result.returncode == expect_rc, result.stderr
    assert "Traceback" not in result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in data["hosts"]}


def wait_until_gone(pid: int, deadline: float) -> None:
    """Wait for ``pid`` to stop existing: a pidfd wait for exit, bounded by ``deadline``."""
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        left = deadline - time.monotonic()
        assert left > 0, f"process {pid} still exists"
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            ready, _, _ = select.select([fd], [], [], left)
        finally:
            os.close(fd)
        assert ready, f"process {pid} still running"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Exited (the pidfd said so) yet still present: a zombie nobody reaps.
        raise AssertionError(f"process {pid} exited but was never reaped (zombie)")


@pytest.fixture(scope="module")
def incident() -> dict[str, Any]:
    return snapshot_json("--demo", "--hosts", "4", "--scenario", "incident")


def test_json_has_the_schema_and_every_host_live(incident: dict[str, Any]) -> None:
    assert incident["schema"] == SCHEMA == "gputui.snapshot/1"
    assert isinstance(incident["taken_at"], float)
    assert abs(incident["taken_at"] - time.time()) < 600
    hosts = incident["hosts"]
    assert [h["name"] for h in hosts] == ["gpu-01", "gpu-02", "gpu-03", "gpu-04"]
    for host in hosts:
        assert set(host) >= HOST_KEYS, host.keys()
        assert host["state"] == "live"
        assert isinstance(host["age_s"], float)
        assert host["driver_version"] == "550.127.08"
        assert len(host["gpus"]) == 8
        for gpu in host["gpus"]:
            assert set(gpu) >= SAMPLE_KEYS, SAMPLE_KEYS - set(gpu)


def test_fanless_h100s_report_no_fan_and_no_retired_pages(incident: dict[str, Any]) -> None:
    for host in incident["hosts"]:
        for gpu in host["gpus"]:
            assert gpu["fan_pct"] is None, (host["name"], gpu["index"])
            assert gpu["retired_pages"] is None, (host["name"], gpu["index"])


def test_the_lost_gpu_has_no_numbers_and_the_others_do(incident: dict[str, Any]) -> None:
    for host in incident["hosts"]:
        for gpu in host["gpus"]:
            if gpu["index"] == LOST_GPU:
                assert gpu["lost"] is True
                assert (gpu["util_pct"], gpu["temp_c"], gpu["power_w"]) == (None, None, None)
            else:
                assert gpu["lost"] is False
                assert isinstance(gpu["util_pct"], int), gpu
                assert isinstance(gpu["temp_c"], int), gpu
                assert isinstance(gpu["power_w"], float), gpu


def test_the_incident_gpus_show_their_trouble(incident: dict[str, Any]) -> None:
    for host in incident["hosts"]:
        gpus = {g["index"]: g for g in host["gpus"]}
        assert any("thermal" in reason for reason in gpus[2]["throttle"]), gpus[2]["throttle"]
        assert not any("thermal" in reason for reason in gpus[0]["throttle"])
        assert gpus[3]["ecc"]["volatile_uncorrected"] > 0
        assert gpus[3]["remapped_rows"]["pending"] is True
        assert gpus[0]["remapped_rows"]["pending"] is False
        idle = gpus[6]
        assert idle["util_pct"] == 0
        assert idle["mem_used_mib"] > 0
        assert len(idle["processes"]) >= 1


def test_table_names_every_host_and_the_lost_gpu() -> None:
    result = gputui("snapshot", "--demo", "--hosts", "4", "--scenario", "incident", "--format", "table")
    assert result.returncode == 0, result.stderr
    for name in ("gpu-01", "gpu-02", "gpu-03", "gpu-04"):
        assert name in result.stdout
    assert result.stdout.count("GPU LOST") == 4


def test_markdown_is_an_incident_report_with_the_alerts_above_each_hosts_tables() -> None:
    result = gputui("snapshot", "--demo", "--hosts", "2", "--scenario", "incident", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    lines = text.splitlines()
    assert lines[0].startswith("# GPU fleet snapshot, ")
    assert "## Alerts" in lines
    alert_rows = [line for line in lines if line.startswith("| **critical** |") or line.startswith("| warning |")]
    for host in ("gpu-01", "gpu-02"):
        assert any(row.startswith(f"| **critical** | {host}:5 | GPU 5 has fallen off the bus (lost) |") for row in alert_rows)
        assert any(f"| {host}:2 | GPU 2 thermal slowdown" in row for row in alert_rows)
        assert any(f"| {host}:3 | GPU 3 has 2 uncorrected ECC errors since its last reset |" in row for row in alert_rows)
        assert any(f"| warning | {host}:3 | GPU 3 has a row remap pending |" in row for row in alert_rows)
        # An XID from NVML's events comes in a sample after the first: the report waits for it, as check does.
        xid = f"| **critical** | {host}:3 | XID 48 on GPU 3: double-bit (uncorrectable) ECC error |"
        assert any(xid in row for row in alert_rows)
    assert "drain the node and reseat or replace; jobs on it are lost" in text
    assert "remapped rows: 2 uncorrectable, 1 correctable" in text  # the evidence
    # Then each affected host: its GPU table and its processes, below the alerts.
    gpu_headers = [i for i, line in enumerate(lines) if line.startswith("| GPU | Name |")]
    proc_headers = [i for i, line in enumerate(lines) if line.startswith("| GPU | PID | User |")]
    assert len(gpu_headers) == 2 and len(proc_headers) == 2
    assert lines.index("## Alerts") < lines.index("## gpu-01 (live)") < gpu_headers[0] < proc_headers[0]
    assert "## gpu-02 (live)" in lines
    assert sum(1 for line in lines if line.startswith("| 5 |") and "| **lost** |" in line) == 2


def test_markdown_of_a_healthy_fleet_says_no_alerts_and_keeps_every_host() -> None:
    result = gputui("snapshot", "--demo", "--hosts", "2", "--scenario", "healthy", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "No active alerts." in result.stdout
    headers = [line for line in result.stdout.splitlines() if line.startswith("| GPU | Name |")]
    assert len(headers) == 2


def test_mixed_boards_report_what_they_have() -> None:
    data = snapshot_json("--demo", "--hosts", "1", "--scenario", "mixed")
    (host,) = data["hosts"]
    assert host["state"] == "live"
    gpus = {g["index"]: g for g in host["gpus"]}
    assert len(gpus) == 4
    pcie_40 = [g for g in gpus.values() if g["name"] == "NVIDIA A100-PCIE-40GB"]
    assert len(pcie_40) == 3
    for gpu in pcie_40:
        assert gpu["mem_temp_c"] is None, gpu["index"]
    assert isinstance(gpus[3]["mem_temp_c"], int)  # the 80GB board has the sensor
    for gpu in gpus.values():
        assert isinstance(gpu["fan_pct"], int), gpu["index"]
    assert gpus[3]["util_pct"] is None  # MIG mode: no whole-GPU utilisation
    for index in (0, 1, 2):
        assert isinstance(gpus[index]["util_pct"], int)


def test_a_local_sim_host_shows_real_stand_in_processes_that_are_gone_afterwards(tmp_path: Path) -> None:
    path = tmp_path / "local.toml"
    path.write_text('[[hosts]]\nname = "bench-01"\ntransport = "local"\nsim = "healthy"\ngpus = 2\n', encoding="utf-8")

    data = snapshot_json("--config", str(path))

    host = by_name(data)["bench-01"]
    assert host["state"] == "live", host["error"]
    assert host["error"] is None
    assert [g["index"] for g in host["gpus"]] == [0, 1]
    procs = [p for g in host["gpus"] for p in g["processes"]]
    assert procs, "a busy healthy host should show its jobs"
    me = pwd.getpwuid(os.getuid()).pw_name
    pids = []
    for proc in procs:
        assert proc["user"] == me
        assert "gputui.sim.standin" in proc["command"]
        assert 1 < proc["pid"] < 4_000_000  # a real pid, not a synthetic one
        assert proc["pid"] != os.getpid()
        pids.append(proc["pid"])
    assert len(set(pids)) == len(pids)
    # Every stand-in is a child of the host's agent, and the JSON says so.
    parents = {(proc["ppid"], proc["parent_command"]) for proc in procs}
    assert len(parents) == 1
    ((ppid, parent_command),) = parents
    assert isinstance(ppid, int) and ppid not in (*pids, os.getpid(), 1) and parent_command

    deadline = time.monotonic() + 10.0
    for pid in pids:
        wait_until_gone(pid, deadline)


def test_an_ssh_host_is_down_with_the_reason_and_the_others_still_print(tmp_path: Path) -> None:
    path = tmp_path / "mixed.toml"
    path.write_text(
        # Nothing listens on loopback port 1: the connection is refused at once.
        '[[hosts]]\nname = "far-01"\naddress = "127.0.0.1"\nport = 1\n\n'
        '[[hosts]]\nname = "near-01"\ntransport = "local"\nsim = "incident"\ngpus = 1\n',
        encoding="utf-8",
    )

    data = snapshot_json("--config", str(path), expect_rc=1)

    hosts = by_name(data)
    assert list(hosts) == ["far-01", "near-01"]
    far = hosts["far-01"]
    assert far["state"] == "down"
    assert "cannot connect to 127.0.0.1" in far["error"]
    assert far["gpus"] == []
    near = hosts["near-01"]
    assert near["state"] == "live"
    assert len(near["gpus"]) == 1


async def test_collect_marks_a_host_down_on_garbage_and_returns() -> None:
    script = "print('not json'); print('{\"type\":\"hello\"}')"
    link = LocalLink("junk-01", [sys.executable, "-c", script])
    store = FleetStore()

    started = time.monotonic()
    await asyncio.wait_for(collect([AgentLines(link)], store, timeout=30.0), timeout=60.0)

    assert time.monotonic() - started < 30.0  # returned on the failure, not on the timeout
    record = store.hosts["junk-01"]
    assert record.bad_frames >= 1
    assert record.state(store.clock()) is HostState.DOWN
    assert record.error
    assert "malformed frame" in record.error and "connection reset" in record.error
    assert record.sample is None


def test_a_config_without_hosts_is_an_error_that_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("interval = 1.0\n", encoding="utf-8")
    for fmt in ("table", "json"):
        done = subprocess.run(
            [sys.executable, "-m", "gputui", "snapshot", "--config", str(path), "--format", fmt],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stdout == ""
        assert f"{path} lists no hosts: add a [[hosts]] table" in done.stderr


def test_snapshot_json_has_each_mig_instance_with_its_profile_memory_and_processes() -> None:
    data = snapshot_json("--demo", "--hosts", "1", "--scenario", "mixed")
    gpus = {g["index"]: g for g in data["hosts"][0]["gpus"]}
    mig = gpus[3]
    assert mig["mig_enabled"] is True
    devices = mig["mig_devices"]
    assert [(d["index"], d["profile"], d["mem_total_mib"]) for d in devices] == [
        (0, "3g.40gb", 40192),
        (1, "2g.20gb", 19968),
        (2, "1g.10gb", 9728),
    ]
    assert all(d["uuid"].startswith("MIG-") and d["compute_instance_id"] == 0 for d in devices)
    # The mixed scenario's MIG GPU runs one job, on its first instance.
    pids = [p["pid"] for p in mig["processes"]]
    assert len(pids) == 1 and devices[0]["pids"] == pids and devices[1]["pids"] == devices[2]["pids"] == []
    assert devices[0]["mem_used_mib"] == mig["mem_used_mib"] and devices[1]["mem_used_mib"] == 0
    assert "mig" not in mig  # the use is in mig_devices, with the layout
    assert all(gpus[i]["mig_devices"] is None and gpus[i]["mig_enabled"] is False for i in (0, 1, 2))
