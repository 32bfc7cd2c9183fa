"""Each GPU's allocation in ``gputui snapshot --format json``: real agents, a real
ledger written by ``gputui reserve|drain|drain-node --yes``, read back by Python and jq."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gputui.fleet.store import FleetStore
from gputui.frames import GpuSample, Hello, ProcessInfo, Sample
from gputui.snapshot import to_json, to_table
from tests.action_cli import gputui

HOSTILE = 'it\'s "hot"; $(touch /tmp/gputui-alloc-pwned) `id`\ntempérature 温度 ✓'
ALLOCATION_KEYS = {"state", "holder", "reason", "ticket", "since", "until", "by", "version", "slurm_job"}
LOST_GPU = 5  # the incident scenario's


def write_config(tmp: Path) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f'[actions]\nenabled = true\naudit_log = "{tmp}/audit.jsonl"\nstate_dir = "{tmp}/state"\n'
        '[[hosts]]\nname = "a"\ntransport = "local"\nsim = "healthy"\n'
        '[[hosts]]\nname = "c"\ntransport = "local"\nsim = "incident"\n'
    )
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("alloc")
    config = write_config(tmp)
    Path("/tmp/gputui-alloc-pwned").unlink(missing_ok=True)
    for args in (
        ("reserve", "a:0", "--for", "bob", "--until", "2h", "--reason", HOSTILE, "--ticket", "OPS-42", "--yes"),
        ("drain", "a:1", "--reason", "fan noise", "--yes"),
        ("drain-node", "c", "--reason", "psu swap", "--ticket", "DC-7", "--yes"),
    ):
        r = gputui(config, *args)
        assert r.returncode == 0, r.stderr
    r = gputui(config, "snapshot", "--format", "json")
    assert r.returncode == 0, r.stderr
    return config, json.loads(r.stdout)


def gpus_of(data: dict[str, Any], host: str) -> dict[int, dict[str, Any]]:
    (h,) = [h for h in data["hosts"] if h["name"] == host]
    return {g["index"]: g for g in h["gpus"]}


def test_the_reserved_gpu_has_holder_reason_verbatim_ticket_until_by_and_version(fleet: tuple[Path, dict[str, Any]]) -> None:
    _, data = fleet
    a = gpus_of(data, "a")[0]["allocation"]
    assert set(a) == ALLOCATION_KEYS
    assert a["state"] == "reserved"
    assert a["holder"] == "bob"
    assert a["reason"] == HOSTILE
    assert a["ticket"] == "OPS-42"
    assert isinstance(a["until"], float) and isinstance(a["since"], float) and a["until"] > a["since"]
    assert a["by"] and "@" in a["by"]
    assert isinstance(a["version"], int) and a["version"] >= 2
    assert not Path("/tmp/gputui-alloc-pwned").exists()


def test_drained_lost_and_busy_gpus_and_the_drained_node(fleet: tuple[Path, dict[str, Any]]) -> None:
    _, data = fleet
    a, c = gpus_of(data, "a"), gpus_of(data, "c")
    assert a[1]["allocation"]["state"] == "drained"
    assert a[1]["allocation"]["reason"] == "fan noise"
    assert a[1]["allocation"]["until"] is None
    assert c[LOST_GPU]["allocation"]["state"] == "lost"
    for i in (2, 3):  # running stand-in processes, held by no ledger entry
        assert a[i]["allocation"]["state"] == "busy"
        assert a[i]["allocation"]["holder"]
        assert a[i]["allocation"]["reason"] is None
    hosts = {h["name"]: h for h in data["hosts"]}
    assert hosts["a"]["node"] is None
    node = hosts["c"]["node"]
    assert (node["state"], node["reason"], node["ticket"]) == ("drained", "psu swap", "DC-7")


def test_jq_lists_the_reserved_gpus(fleet: tuple[Path, dict[str, Any]]) -> None:
    """The issue's own one-liner; jq comes with `make test` (system-deps), as root."""
    assert shutil.which("jq"), "jq is not installed: `apt-get install jq` (make test does this as root)"
    _, data = fleet
    r = subprocess.run(
        ["jq", "-c", '.hosts[].gpus[] | select(.allocation.state=="reserved")'],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (line,) = r.stdout.splitlines()
    gpu = json.loads(line)
    assert gpu["index"] == 0 and gpu["allocation"]["reason"] == HOSTILE
    r = subprocess.run(
        ["jq", "-r", '.hosts[] | select(.node.state=="drained") | .name'],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert r.stdout.split() == ["c"]


def test_the_table_has_a_state_word_per_gpu(fleet: tuple[Path, dict[str, Any]]) -> None:
    config, _ = fleet
    r = gputui(config, "snapshot", "--format", "table")
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if "H100" in line]  # the GPU rows, host a's first
    assert rows[0].split()[0] == "0" and " reserved " in rows[0]
    assert rows[1].split()[0] == "1" and " drained " in rows[1]
    assert "node drained: psu swap" in r.stdout


def store_with(*gpus: GpuSample) -> FleetStore:
    store = FleetStore()
    store.add_host("h")
    store.apply("h", Hello(type="hello", v=1, t=0.0, agent_version="t", host="h", gpus=[]))
    store.apply("h", Sample(type="sample", v=1, t=1.0, seq=1, gpus=list(gpus)))
    return store


def test_a_gpu_with_nothing_on_it_is_free_and_the_ledger_fields_are_null() -> None:
    busy = GpuSample(index=1, util_pct=90, mem_used_mib=4000, processes=[ProcessInfo(pid=7, user="eve", slurm_job="42")])
    pod = GpuSample(index=2, util_pct=90, mem_used_mib=4000, holder="ns/train-0")
    store = store_with(GpuSample(index=0, util_pct=0, mem_used_mib=0), busy, pod)
    (host,) = to_json(store)["hosts"]
    assert host["node"] is None
    allocs = {g["index"]: g["allocation"] for g in host["gpus"]}
    assert allocs[0] == dict.fromkeys(ALLOCATION_KEYS) | {"state": "free"}
    assert (allocs[1]["state"], allocs[1]["holder"]) == ("busy", "eve")
    assert allocs[2]["holder"] == "ns/train-0"
    assert " free " in to_table(store)
