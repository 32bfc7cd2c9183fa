"""Action backends: every one the registry names loads and previews and applies;
the slurmctld backend drains and resumes whole nodes through a real Slurm
controller from the dashboard's machine (tests/slurm_cluster.py, loopback: no
slurmd, so nodes stay UNKNOWN), refuses drain, undrain and kill (single-GPU
reserve and release go to the host's ledger: tests/test_slurm_reservations.py), passes scontrol's
own words back when it fails, and refuses an apply when someone changed the
node since the preview."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gputui import registry
from gputui.actions.audit import AuditLog
from gputui.actions.backends.slurmctld import NODE_ONLY, SlurmctldBackend, parse_node
from gputui.actions.guard import Guard
from gputui.actions.model import ActionRequest, HostAnswer, HostRequest, Operator, Target
from gputui.config import Config
from tests.slurm_cluster import SlurmCluster

# A host no agent could be reached on: the slurmctld backend never tries.
UNREACHABLE = 'address = "192.0.2.1"\nport = 9\n'
HOSTILE = "fan \"noise\" 'x'; $(touch /tmp/gt-pwned) ✓"


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with SlurmCluster() as cluster:
        yield cluster


@pytest.fixture
def slurm_env(slurm: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf_path))
    return slurm


def write_config(tmp_path: Path, nodes: dict[str, str]) -> Path:
    hosts = "".join(
        f'[[hosts]]\nname = "{name}"\n{UNREACHABLE}backend = "slurmctld"\nslurm_node = "{node}"\n' for name, node in nodes.items()
    )
    path = tmp_path / "config.toml"
    path.write_text(f'[actions]\nenabled = true\naudit_log = "{tmp_path}/audit.jsonl"\nstate_dir = "{tmp_path}/state"\n\n{hosts}')
    return path


def gputui(slurm: SlurmCluster, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gputui", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=slurm.env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip


def audit(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def resume(slurm: SlurmCluster, node: str) -> None:
    """Loopback: RESUME exits 1 on a node that never registered, yet clears DRAIN."""
    slurm.scontrol("update", f"NodeName={node}", "State=RESUME")
    assert "DRAIN" not in slurm.show_node(node).flags


# -- the registry ----------------------------------------------------------------


@pytest.mark.parametrize("kind", registry.ACTION_BACKENDS, ids=lambda k: k.name)
def test_every_registered_backend_loads_and_previews_and_applies(kind: registry.BackendKind) -> None:
    factory = registry.load(kind).backend
    made = factory(Config.model_validate({"hosts": [{"name": "h"}]}))
    for method in ("preview", "apply"):
        assert inspect.iscoroutinefunction(getattr(made, method)), f"{kind.name}: {method} is not async"
    assert list(inspect.signature(made.apply).parameters) == ["host", "request", "preview", "timeout"]
    assert kind.flavour in ("agent", "control-plane")


def test_a_guard_builds_one_backend_per_module(tmp_path: Path) -> None:
    guard = Guard(Config.model_validate({"hosts": [{"name": "h"}]}), Operator("a", "b"), AuditLog(tmp_path / "a.jsonl"))
    assert guard.backend("ledger") is guard.backend("nvml") is guard.backend("slurm")  # one agent bundle, one SSH pool
    assert isinstance(guard.backend("slurmctld"), SlurmctldBackend)
    with pytest.raises(ValueError, match="unknown action backend 'k8s'"):
        guard.backend("k8s")


# -- slurmctld through the CLI, against a real controller --------------------------


def test_drain_node_and_resume_node_through_the_controller(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"node-a": "gt-a"})
    r = gputui(slurm, config, "drain-node", "node-a", "--reason", HOSTILE, "--ticket", "OPS-7", "--yes")
    assert r.returncode == 0, r.stderr
    assert "backend slurmctld" in r.stdout and "will run: scontrol update NodeName=gt-a State=DRAIN" in r.stdout
    info = slurm.show_node("gt-a")
    assert "DRAIN" in info.flags
    assert info.reason == HOSTILE  # verbatim: one argument, no shell
    assert not Path("/tmp/gt-pwned").exists()
    assert not (tmp_path / "state").exists()  # no agent was asked
    records = audit(tmp_path)
    assert [e["status"] for e in records] == ["started", "applied"]
    applied = records[-1]
    assert applied["action"] == "drain-node" and applied["reason"] == HOSTILE and applied["ticket"] == "OPS-7"
    host = applied["hosts"]["node-a"]  # type: ignore[index]
    assert host["ok"] and host["commands"] == [["scontrol", "update", "NodeName=gt-a", "State=DRAIN", f'Reason="{HOSTILE}"']]
    assert "DRAIN" in host["node"]["state"] and host["node"]["reason"].startswith(HOSTILE)

    r = gputui(slurm, config, "resume-node", "node-a", "--reason", "fixed", "--yes")
    info = slurm.show_node("gt-a")
    assert "DRAIN" not in info.flags and info.reason is None
    # Without slurmd the node never registered, and Slurm says so for RESUME
    # (exit 1) while it clears DRAIN: the outcome is Slurm's word, as it said it.
    if r.returncode != 0:
        assert "Invalid node state specified" in r.stderr
        assert audit(tmp_path)[-1]["status"] == "failed"
        assert "Slurm now has node gt-a as UNKNOWN" in r.stdout  # and what it did is shown
    else:
        assert audit(tmp_path)[-1]["status"] == "applied"


@pytest.mark.parametrize(
    "args", [("drain", "node-b:0,1"), ("undrain", "node-b:0"), ("kill", "node-b:pid=4242")], ids=lambda a: a[0]
)
def test_gpu_level_actions_are_refused_with_the_reason(slurm: SlurmCluster, tmp_path: Path, args: tuple[str, ...]) -> None:
    config = write_config(tmp_path, {"node-b": "gt-b"})
    r = gputui(slurm, config, *args, "--reason", "test", "--yes")
    assert r.returncode == 1
    assert "acts on whole nodes" in r.stderr and "use backend ledger, nvml or slurm" in r.stderr
    [record] = audit(tmp_path)
    assert record["status"] == "refused" and NODE_ONLY in str(record["message"])
    assert "DRAIN" not in slurm.show_node("gt-b").flags


def test_an_unknown_node_is_refused_in_scontrols_words(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"node-x": "gt-nope"})
    r = gputui(slurm, config, "drain-node", "node-x", "--reason", "test", "--yes")
    assert r.returncode == 1
    assert "Node gt-nope not found" in r.stderr
    [record] = audit(tmp_path)
    assert record["status"] == "refused" and "Node gt-nope not found" in str(record["message"])


# -- slurmctld in process: races and failures --------------------------------------


def guard_for(tmp_path: Path, node: str, name: str = "audit.jsonl") -> Guard:
    config = Config.model_validate(
        {
            "actions": {"enabled": True},
            "hosts": [{"name": "n", "address": "192.0.2.1", "backend": "slurmctld", "slurm_node": node}],
        }
    )
    return Guard(config, Operator("alice", "console1"), AuditLog(tmp_path / name))


async def test_two_dashboards_racing_the_second_is_refused_as_a_conflict(slurm_env: SlurmCluster, tmp_path: Path) -> None:
    first, second = guard_for(tmp_path, "gt-c", "one.jsonl"), guard_for(tmp_path, "gt-c", "two.jsonl")
    request = ActionRequest("drain-node", [Target("n")], "rack move")
    plan_one, plan_two = await first.prepare(request), await second.prepare(request)
    assert plan_one.refused is None and plan_two.refused is None
    assert (await first.apply(plan_one)).status == "applied"
    reason = slurm_env.node_reason("gt-c")
    lost = await second.apply(plan_two)
    assert lost.status == "failed" and "conflict: Slurm's node gt-c changed since the preview" in lost.message
    assert "preview again" in lost.message and plan_two.steps[0].result is not None and plan_two.steps[0].result.conflict
    assert slurm_env.node_reason("gt-c") == reason  # the second did not overwrite the first
    assert json.loads((tmp_path / "two.jsonl").read_text().splitlines()[-1])["status"] == "failed"
    # A job starting or Slurm pinging the node is no conflict; someone resuming it is.
    fresh = await second.prepare(ActionRequest("resume-node", [Target("n")], "done"))
    resume(slurm_env, "gt-c")
    assert (await second.apply(fresh)).status == "failed"


def fake_scontrol(tmp_path: Path, body: str) -> str:
    path = tmp_path / "scontrol"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


SHOW = 'if [ "$1" = show ]; then echo "NodeName=n1 Arch=x86_64 State=IDLE ThreadsPerCore=1"; exit 0; fi\n'


def node_request(phase: str, action: str = "drain-node") -> HostRequest:
    return HostRequest.model_validate(
        {"v": 1, "phase": phase, "action": action, "operator": {"user": "alice"}, "reason": "r", "slurm_node": "n1",
         "backend": "slurmctld"}
    )  # fmt: skip


def one_host() -> tuple[Config, object]:
    config = Config.model_validate({"hosts": [{"name": "h", "backend": "slurmctld", "slurm_node": "n1"}]})
    return config, config.hosts[0]


async def test_scontrol_missing_is_a_failed_answer(tmp_path: Path) -> None:
    config, host = one_host()
    answer = await SlurmctldBackend(config, scontrol=str(tmp_path / "no-scontrol")).preview(host, node_request("preview"), 5)  # type: ignore[arg-type]
    assert not answer.ok and "not installed on this machine" in (answer.error or "")


async def test_a_failing_update_gives_scontrols_stderr(tmp_path: Path) -> None:
    config, host = one_host()
    backend = SlurmctldBackend(
        config, scontrol=fake_scontrol(tmp_path, SHOW + 'echo "slurm_update error: Access denied" >&2\nexit 1\n')
    )
    preview = await backend.preview(host, node_request("preview"), 5)  # type: ignore[arg-type]
    assert preview.ok and preview.node is not None and preview.node.state == "IDLE"
    answer = await backend.apply(host, node_request("apply"), preview, 5)  # type: ignore[arg-type]
    assert not answer.ok and not answer.conflict and answer.error == "slurm_update error: Access denied"


async def test_a_silent_scontrol_times_out_into_a_failed_answer(tmp_path: Path) -> None:
    config, host = one_host()
    backend = SlurmctldBackend(config, scontrol=fake_scontrol(tmp_path, SHOW + "exec sleep 30\n"))
    preview = await backend.preview(host, node_request("preview"), 5)  # type: ignore[arg-type]
    answer = await backend.apply(host, node_request("apply"), preview, 0.5)  # type: ignore[arg-type]
    assert not answer.ok and "gave no answer within" in (answer.error or "") and "look before retrying" in (answer.error or "")


async def test_an_apply_without_the_nodes_preview_is_refused(tmp_path: Path) -> None:
    config, host = one_host()
    backend = SlurmctldBackend(config, scontrol=fake_scontrol(tmp_path, SHOW))
    answer = await backend.apply(host, node_request("apply"), HostAnswer(ok=True), 5)  # type: ignore[arg-type]
    assert not answer.ok and "preview first" in (answer.error or "")


def test_show_node_is_read_with_its_reason_and_stamp() -> None:
    line = (
        "NodeName=gt-a CoresPerSocket=1 State=IDLE+DRAIN ThreadsPerCore=1 Partitions=gpu "
        "Reason=fan noise [root@2026-12-04T21:09:01] Comment=x\n"
    )
    node = parse_node("gt-a", line)
    assert node is not None and node.state == "IDLE+DRAIN" and node.reason == "fan noise [root@2026-12-04T21:09:01]"
    plain = parse_node("gt-a", "NodeName=gt-a State=MIXED ThreadsPerCore=1\n")
    assert plain is not None and plain.reason is None
    assert parse_node("gt-a", "garbage") is None


def test_an_action_through_the_agent_on_a_host_read_with_nvidia_smi_only_is_refused(tmp_path: Path) -> None:
    """transport = "nvidia-smi" means nothing of gputui runs on the host: the agent's backends refuse
    in the preview, say what would work, and the refusal is audited; nothing is tried over SSH."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[actions]\nenabled = true\naudit_log = "{tmp_path}/audit.jsonl"\n\n'
        f'[[hosts]]\nname = "legacy-01"\n{UNREACHABLE}transport = "nvidia-smi"\nbackend = "nvml"\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "gputui", "reserve", "legacy-01:0", "--reason", "test", "--yes", "--config", str(path)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "nvidia-smi only" in r.stderr and 'backend = "slurmctld"' in r.stderr
    [record] = audit(tmp_path)
    assert record["status"] == "refused" and "nvidia-smi only" in str(record["message"])
