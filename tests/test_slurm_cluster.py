"""The Slurm test cluster: a real slurmctld that GPU hosts drain and resume through."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurm_cluster import SlurmCluster, parse_show_node
from tests.sshfleet import SshFleet


@pytest.fixture(scope="module")
def slurm(fleet: SshFleet) -> Iterator[SlurmCluster]:
    with SlurmCluster(fleet) as cluster:
        yield cluster
    assert not cluster.root.exists(), f"{cluster.root} left behind"


def drain(slurm: SlurmCluster, node: str, reason: str, host: str) -> subprocess.CompletedProcess[str]:
    return slurm.scontrol("update", f"NodeName={node}", "State=DRAIN", f"Reason={reason}", host=host)


def resume(slurm: SlurmCluster, node: str, host: str) -> None:
    done = slurm.scontrol("update", f"NodeName={node}", "State=RESUME", host=host)
    assert done.returncode == 0, done.stderr
    slurm.wait_state(node, "IDLE")


def test_the_controller_answers_and_every_node_registered(slurm: SlurmCluster) -> None:
    assert slurm.ping()
    if not slurm.namespaces:
        pytest.skip("no namespaces: no slurmd, nodes never register")
    assert {n: slurm.node_state(n) for n in slurm.nodes} == {"gt-a": "IDLE", "gt-b": "IDLE", "gt-c": "IDLE"}
    pinged = slurm.scontrol("ping", host="gt-c")  # from a GPU host's own namespace
    assert pinged.returncode == 0 and "is UP" in pinged.stdout, pinged


def test_drain_and_resume_from_a_gpu_host_change_what_slurm_reports(slurm: SlurmCluster) -> None:
    if not slurm.namespaces:
        pytest.skip("needs namespaces: without slurmd RESUME fails on a node that never registered")
    done = drain(slurm, "gt-a", "GPU 3 Xid 79", host="gt-a")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    info = slurm.show_node("gt-a")
    assert info.state == "IDLE+DRAIN"
    assert info.reason == "GPU 3 Xid 79"
    assert info.reason_by is not None and info.reason_by.startswith("root@")
    assert slurm.node_state("gt-b") == "IDLE"  # only the one node

    resume(slurm, "gt-a", host="gt-a")
    assert slurm.node_reason("gt-a") is None


# scontrol takes Reason= from its argv as is (no shell, no truncation at 70,000
# characters, newlines kept) except one thing: a leading '"' and a trailing '"' are
# each cut off, independently; single quotes are kept.
@pytest.mark.parametrize(
    ("reason", "shown"),
    [("it's 'quoted'", "it's 'quoted'"), ("a; rm -rf /tmp/nothing", "a; rm -rf /tmp/nothing"),
     ("$(touch /tmp/gt-slurm-pwned)", "$(touch /tmp/gt-slurm-pwned)"), ("é 温度 ✓", "é 温度 ✓"), ("  padded  ", "  padded  "),
     ("line one\nline two", "line one\nline two"), ("Reason=x State=RESUME", "Reason=x State=RESUME"), ("x" * 5000, "x" * 5000),
     ('a "b" c', 'a "b" c'), ('say "hi"', 'say "hi'), ('"quoted"', "quoted"), ('"lead', "lead")],
)  # fmt: skip
def test_a_reason_passed_as_one_argument_comes_back_as_given(slurm: SlurmCluster, reason: str, shown: str) -> None:
    if not slurm.namespaces:
        pytest.skip("needs namespaces (resume)")
    done = drain(slurm, "gt-b", reason, host="gt-b")
    assert done.returncode == 0, done.stderr
    try:
        assert slurm.node_reason("gt-b") == shown
        assert slurm.node_state("gt-b") == "IDLE+DRAIN"
    finally:
        resume(slurm, "gt-b", host="gt-b")
    assert not Path("/tmp/gt-slurm-pwned").exists()


def test_what_scontrol_says_when_it_refuses(slurm: SlurmCluster) -> None:
    bad = drain(slurm, "nope", "x", host="gt-a")
    assert (bad.returncode, bad.stderr) == (1, "slurm_update error: Invalid node name specified\n")
    empty = drain(slurm, "gt-a", "", host="gt-a")
    assert (empty.returncode, empty.stderr) == (1, "You must specify a reason when DOWNING or DRAINING a node. Request denied\n")
    nobody = slurm.scontrol("update", "NodeName=gt-a", "State=DRAIN", "Reason=x", host="gt-a", user="nobody")
    assert (nobody.returncode, nobody.stderr) == (1, "slurm_update error: Invalid user id\n")
    assert "DRAIN" not in slurm.node_state("gt-a").split("+")
    if slurm.namespaces:  # resuming a node that is not drained is an error too
        again = slurm.scontrol("update", "NodeName=gt-a", "State=RESUME", host="gt-a")
        assert (again.returncode, again.stderr) == (1, "slurm_update error: Invalid node state specified\n")


def test_ssh_sessions_on_the_fleet_find_the_cluster(slurm: SlurmCluster, fleet: SshFleet, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"  # ProxyJump's inner ssh reads -F but not -o: known_hosts goes in the file
    config.write_text(f"{fleet.ssh_config.read_text()}\nHost *\n  UserKnownHostsFile {fleet.known_hosts}\n  BatchMode yes\n")
    out = subprocess.run(["ssh", "-F", str(config), "gt-c", "echo $SLURM_CONF; scontrol ping"],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == str(slurm.conf_path)
    assert "is UP" in out.stdout


def test_a_cluster_without_a_fleet_answers_and_leaves_nothing_behind() -> None:
    cluster = SlurmCluster(nodes=["gt-x"])
    with cluster:
        assert cluster.ping()
        assert cluster.node_state("gt-x") == "UNKNOWN"  # no slurmd on loopback: it never registers
        done = cluster.scontrol("update", "NodeName=gt-x", "State=DRAIN", "Reason=x")
        assert done.returncode == 0, done.stderr
        assert cluster.node_state("gt-x") == "UNKNOWN+DRAIN"
        pids = [p.pid for p in (cluster.slurmctld, cluster.munged) if p is not None]
        assert len(pids) == 2
    assert not cluster.root.exists()
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_parse_show_node_cuts_slurms_suffix_and_joins_continued_lines() -> None:
    text = (
        "NodeName=gt-a Arch=x86_64 CoresPerSocket=1 \n"
        "   State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n"
        "   Partitions=gpu \n"
        "   Reason=first [x] [root@2026-11-28T17:58:21]\n"
        "            indented\n\n"
    )
    info = parse_show_node(text)
    assert (info.state, info.reason, info.reason_by) == ("IDLE+DRAIN", "first [x]\n  indented", "root@2026-11-28T17:58:21")
    assert info.flags == {"IDLE", "DRAIN"}
    assert parse_show_node("   State=IDLE ThreadsPerCore=1\n").reason is None
