"""Slurm reservations through the slurmctld backend, against a real controller
(tests/slurm_cluster.py, loopback: no slurmd, nodes UNKNOWN, which Slurm
reserves all the same): reserve-node creates gputui's reservation of the node
and release-node deletes it, through the policy, preview, confirmation and
audit; a release with nothing to release, a reservation made or deleted by
hand between the preview and the apply, a user Slurm does not know and an
ended reservation; a single GPU on a slurmctld host is held by the host's
ledger, and an agent backend refuses reserve-node saying what works.

Users= must name a user the controller knows: "bob" does not exist on the test
machine (Slurm answers "Invalid user id"), so the node is reserved for nobody."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gputui.actions.audit import AuditLog
from gputui.actions.backends.agent import CONTROL_PLANE_ONLY
from gputui.actions.backends.slurm_reservation import gputui_reservation_name, reservation_words
from gputui.actions.backends.slurmctld import NO_COMMENT, NODE_ONLY, SINGLE_GPU
from gputui.actions.guard import Guard
from gputui.actions.model import ActionRequest, Operator, Target
from gputui.config import Config
from gputui.slurm.model import SlurmReservation
from gputui.slurm.parse import reservations as parse_reservations
from tests.slurm_cluster import SlurmCluster
from tests.waiting import wait_until

# A host no agent could be reached on: the slurmctld backend never tries, for whole nodes.
UNREACHABLE = 'address = "192.0.2.1"\nport = 9\n'
HOSTILE = "fan \"noise\" 'x'; $(touch /tmp/gt-resv-pwned) `id` ✓"
USER = "nobody"


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with SlurmCluster(nodes=("gt-a", "gt-b", "gt-c", "gt-d", "gt-e")) as cluster:
        yield cluster


@pytest.fixture
def slurm_env(slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf_path))
    return slurm


def write_config(tmp_path: Path, nodes: dict[str, str], local: dict[str, str] | None = None) -> Path:
    """``nodes``: hosts on backend slurmctld by Slurm node; ``local``: simulated local hosts by backend."""
    hosts = "".join(
        f'[[hosts]]\nname = "{name}"\n{UNREACHABLE}backend = "slurmctld"\nslurm_node = "{node}"\n' for name, node in nodes.items()
    )
    hosts += "".join(
        f'[[hosts]]\nname = "{name}"\ntransport = "local"\nsim = "healthy"\nbackend = "{backend}"\nslurm_node = "gt-e"\n'
        for name, backend in (local or {}).items()
    )
    path = tmp_path / "config.toml"
    path.write_text(f'[actions]\nenabled = true\naudit_log = "{tmp_path}/audit.jsonl"\nstate_dir = "{tmp_path}/state"\n\n{hosts}')
    return path


def gputui(slurm: SlurmCluster, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gputui", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=slurm.env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def reservations(slurm: SlurmCluster) -> dict[str, SlurmReservation]:
    shown = slurm.scontrol("show", "reservation", "-o")
    assert shown.returncode == 0, shown.stderr
    return {r.name: r for r in parse_reservations(shown.stdout)}


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()  # Slurm prints its local time, as this process reads it


# -- through the CLI -----------------------------------------------------------------


def test_reserve_node_creates_the_reservation_and_release_node_deletes_it(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"node-a": "gt-a"})
    asked = time.time()
    r = gputui(slurm, config, "reserve-node", "node-a", "--for", USER, "--until", "1h", "--reason", HOSTILE,
               "--ticket", "OPS-9", "--yes")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "will run: scontrol create reservation ReservationName=gputui-gt-a StartTime=now EndTime=" in r.stdout
    assert f"Nodes=gt-a Users={USER} Flags=IGNORE_JOBS" in r.stdout and NO_COMMENT in r.stdout
    assert f"for: {USER}" in r.stdout and "gputui's reservation: none" in r.stdout
    made = reservations(slurm)["gputui-gt-a"]
    assert (made.nodes, made.users, made.state) == ("gt-a", USER, "ACTIVE") and "IGNORE_JOBS" in made.flags
    assert asked + 3600 - 2 <= epoch(made.end) <= time.time() + 3600 + 1
    assert not Path("/tmp/gt-resv-pwned").exists()
    assert not (tmp_path / "state").exists()  # no agent was asked
    started, applied = audit(tmp_path)
    assert (started["status"], applied["status"]) == ("started", "applied") and applied["ref"] == started["id"]
    assert applied["action"] == "reserve-node" and applied["reason"] == HOSTILE and applied["ticket"] == "OPS-9"
    host = applied["hosts"]["node-a"]
    argv = host["commands"][0]
    assert argv[:5] == ["scontrol", "create", "reservation", "ReservationName=gputui-gt-a", "StartTime=now"]
    assert argv[6:] == ["Nodes=gt-a", f"Users={USER}", "Flags=IGNORE_JOBS"] and argv[5].startswith("EndTime=")
    assert host["node"]["reservation"] == reservation_words(made)  # what Slurm had after, beside the node

    r = gputui(slurm, config, "release-node", "node-a", "--reason", "done", "--yes")
    assert r.returncode == 0, r.stderr
    assert "will run: scontrol delete ReservationName=gputui-gt-a" in r.stdout
    assert "gputui-gt-a" not in reservations(slurm)
    released = audit(tmp_path)[-1]
    assert released["status"] == "applied" and released["hosts"]["node-a"]["commands"] == [
        ["scontrol", "delete", "ReservationName=gputui-gt-a"]
    ]
    assert released["hosts"]["node-a"]["node"]["reservation"] == "none"

    r = gputui(slurm, config, "release-node", "node-a", "--reason", "again", "--yes")
    assert r.returncode == 1
    nothing = "Slurm has no reservation gputui-gt-a (gputui's for node gt-a): nothing to release"
    assert nothing in r.stderr
    refused = audit(tmp_path)[-1]
    assert refused["status"] == "refused" and nothing in refused["message"] and refused["reason"] == "again"


def test_a_node_already_reserved_by_gputui_is_refused_and_a_hand_made_one_is_left_alone(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {"node-b": "gt-b"})
    other = slurm.scontrol("create", "reservation", "ReservationName=ops-hand", "StartTime=now", "Duration=60",
                           "Nodes=gt-b", "Users=root", "Flags=OVERLAP")  # fmt: skip
    assert other.returncode == 0, other.stderr
    try:
        assert gputui(slurm, config, "reserve-node", "node-b", "--for", USER, "--reason", "eval", "--yes").returncode == 0
        made = reservations(slurm)["gputui-gt-b"]
        assert made.end != "" and made.users == USER  # no --until: Slurm's UNLIMITED (a year in 22.05)
        r = gputui(slurm, config, "reserve-node", "node-b", "--reason", "twice", "--yes")
        assert r.returncode == 1 and "node gt-b already has gputui's reservation gputui-gt-b" in r.stderr
        assert "release-node first" in r.stderr and audit(tmp_path)[-1]["status"] == "refused"
        assert gputui(slurm, config, "release-node", "node-b", "--reason", "done", "--yes").returncode == 0
        assert "ops-hand" in reservations(slurm) and "gputui-gt-b" not in reservations(slurm)
    finally:
        slurm.scontrol("delete", "ReservationName=ops-hand")
        slurm.scontrol("delete", "ReservationName=gputui-gt-b")


def test_a_user_slurm_does_not_know_fails_in_slurms_words(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"node-c": "gt-c"})
    r = gputui(slurm, config, "reserve-node", "node-c", "--for", "bob", "--reason", "eval", "--yes")
    assert r.returncode == 1 and "Invalid user id" in r.stderr
    assert "Users=bob: Slurm refuses a name its controller does not know as a user" in r.stdout  # the preview warned
    failed = audit(tmp_path)[-1]
    assert failed["status"] == "failed" and "Invalid user id" in failed["message"]
    assert "gputui-gt-c" not in reservations(slurm)
    # Words that could read as another of scontrol's keys never reach it.
    r = gputui(slurm, config, "reserve-node", "node-c", "--for", "bob Flags=MAINT", "--reason", "eval", "--yes")
    assert r.returncode == 1 and "is not a Slurm user name" in r.stderr and audit(tmp_path)[-1]["status"] == "refused"


def test_a_reservation_ends_at_until_and_slurm_removes_it(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"node-d": "gt-d"})
    r = gputui(slurm, config, "reserve-node", "node-d", "--for", USER, "--until", "5s", "--reason", "short", "--yes")
    assert r.returncode == 0, r.stderr
    made = reservations(slurm).get("gputui-gt-d")
    assert made is not None and epoch(made.end) - epoch(made.start) <= 6  # EndTime= to the second
    # slurmctld purges an ended reservation in its background loop, about every 30 s.
    wait_until(lambda: "gputui-gt-d" not in reservations(slurm), "Slurm to remove the ended reservation", timeout=120)
    r = gputui(slurm, config, "release-node", "node-d", "--reason", "late", "--yes")
    assert r.returncode == 1 and "nothing to release" in r.stderr


def test_a_single_gpu_on_a_slurmctld_host_is_held_by_the_hosts_ledger(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, {}, local={"node-l": "slurmctld"})
    r = gputui(slurm, config, "reserve", "node-l:0", "--for", "bob", "--reason", "eval", "--yes")
    assert r.returncode == 0, r.stderr
    assert f"note: {SINGLE_GPU}" in r.stdout
    assert SINGLE_GPU == (
        "Slurm 22.05 reservations cannot hold single GPUs (TRES= takes CPU, Node, License, BB): the host's ledger holds it"
    )
    assert "ledger v" in r.stdout and (tmp_path / "state").exists()  # the host's agent and its ledger
    assert not any(name.startswith("gputui-") for name in reservations(slurm))
    assert audit(tmp_path)[-1]["status"] == "applied"
    assert gputui(slurm, config, "release", "node-l:0", "--reason", "done", "--yes").returncode == 0
    r = gputui(slurm, config, "drain", "node-l:0", "--reason", "hot", "--yes")
    assert r.returncode == 1 and NODE_ONLY in r.stderr  # drain, undrain and kill stay refused


def test_an_agent_backend_refuses_reserve_node_saying_what_works(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, {}, local={"node-l": "ledger"})
    r = gputui(slurm, config, "reserve-node", "node-l", "--reason", "eval", "--yes")
    assert r.returncode == 1
    assert CONTROL_PLANE_ONLY.format(action="reserve-node") in r.stderr and 'backend = "slurmctld"' in r.stderr
    assert audit(tmp_path)[-1]["status"] == "refused" and not (tmp_path / "state").exists()
    r = gputui(slurm, config, "reserve-node", "node-l:0", "--reason", "eval", "--yes")
    assert r.returncode == 2 and "reserve-node takes a whole host" in r.stderr


# -- in process: someone changes Slurm between the preview and the apply ---------------


def guard_for(tmp_path: Path, node: str, name: str = "audit.jsonl") -> Guard:
    config = Config.model_validate(
        {
            "actions": {"enabled": True},
            "hosts": [{"name": "n", "address": "192.0.2.1", "backend": "slurmctld", "slurm_node": node}],
        }
    )
    return Guard(config, Operator("alice", "console1"), AuditLog(tmp_path / name))


async def test_a_reservation_made_or_deleted_by_hand_after_the_preview_is_a_conflict(
    slurm_env: SlurmCluster, tmp_path: Path
) -> None:
    guard = guard_for(tmp_path, "gt-e")
    plan = await guard.prepare(ActionRequest("reserve-node", [Target("n")], "eval", holder=USER))
    assert plan.refused is None
    made = slurm_env.scontrol("create", "reservation", "ReservationName=gputui-gt-e", "StartTime=now", "Duration=30",
                              "Nodes=gt-e", "Users=root", "Flags=IGNORE_JOBS")  # fmt: skip
    assert made.returncode == 0, made.stderr
    lost = await guard.apply(plan)
    assert lost.status == "failed" and "conflict: Slurm's node gt-e changed since the preview" in lost.message
    assert "gputui's reservation: none" in lost.message and "preview again" in lost.message
    assert reservations(slurm_env)["gputui-gt-e"].users == "root"  # the hand-made one stands

    plan = await guard.prepare(ActionRequest("release-node", [Target("n")], "done"))
    assert plan.refused is None and plan.steps[0].preview.commands == [["scontrol", "delete", "ReservationName=gputui-gt-e"]]
    assert slurm_env.scontrol("delete", "ReservationName=gputui-gt-e").returncode == 0
    lost = await guard.apply(plan)
    assert lost.status == "failed" and "conflict" in lost.message and "gputui's reservation: none" in lost.message
    statuses = [json.loads(line)["status"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert statuses == ["started", "failed", "started", "failed"]


# -- reading scontrol's words ------------------------------------------------------


def test_show_reservation_is_read_field_by_field() -> None:
    text = (
        "ReservationName=gputui-gt-a StartTime=2026-12-05T02:42:46 EndTime=2026-12-05T03:42:46 Duration=01:00:00 "
        "Nodes=gt-a NodeCnt=1 CoreCnt=1 Features=(null) PartitionName=(null) Flags=IGNORE_JOBS,SPEC_NODES TRES=cpu=1 "
        "Users=nobody Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE BurstBuffer=(null) Watts=n/a "
        "MaxStartDelay=(null)\n"
        "ReservationName=ops StartTime=2026-12-06T00:00:00 EndTime=2026-12-07T00:00:00 Duration=1-00:00:00 "
        "Nodes=gt-[b-c] Flags=MAINT Users=(null) Accounts=ml State=INACTIVE\n"
    )
    first, second = parse_reservations(text)
    assert first == SlurmReservation(
        "gputui-gt-a", "gt-a", "nobody", "2026-12-05T02:42:46", "2026-12-05T03:42:46", "IGNORE_JOBS,SPEC_NODES", "ACTIVE"
    )
    assert (second.nodes, second.users, second.state) == ("gt-[b-c]", "", "INACTIVE")
    assert parse_reservations("No reservations in the system\n") == []
    assert gputui_reservation_name("gt-a") == "gputui-gt-a" and gputui_reservation_name("gpu[01-04]") == "gputui-gpu_01-04_"
