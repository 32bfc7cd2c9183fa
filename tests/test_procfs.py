"""Who runs a GPU process, read from /proc: Slurm job and container ids."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time

from gputui.agent.procfs import ProcReader, parse_cgroup


def test_slurm_job_from_cgroup_v2() -> None:
    text = "0::/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0\n"
    assert parse_cgroup(text) == ("4242", None)


def test_slurm_job_from_cgroup_v1() -> None:
    text = "11:devices:/slurm/uid_1000/job_77/step_batch\n4:memory:/slurm/uid_1000/job_77/step_batch\n"
    assert parse_cgroup(text) == ("77", None)


def test_container_ids_from_docker_and_containerd() -> None:
    cid = "3f4e" + "a" * 60
    assert parse_cgroup(f"0::/system.slice/docker-{cid}.scope\n") == (None, cid[:12])
    assert parse_cgroup(f"0::/kubepods/besteffort/pod1/cri-containerd-{cid}.scope\n") == (None, cid[:12])
    assert parse_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n") == (None, None)


def test_facts_of_a_real_process_and_of_one_that_exited() -> None:
    code = "import sys; sys.stdout.write('up'); sys.stdout.flush(); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code, "marker-arg"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    reader = ProcReader()
    try:
        # Read only once it runs: between fork and exec its cmdline is still empty (shown as "[python3]").
        assert child.stdout is not None and child.stdout.read(2) == b"up"
        facts = reader.facts(child.pid, time.monotonic())
        assert facts is not None
        assert facts["user"] == pwd.getpwuid(os.getuid()).pw_name
        assert "marker-arg" in str(facts["command"])
        assert abs(float(str(facts["started_at"])) - time.time()) < 120
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert reader.facts(child.pid, time.monotonic()) is None


def test_a_process_read_before_it_execs_is_read_again_once_it_has() -> None:
    """Right after fork the child still looks like its parent; its real command must win."""
    reader = ProcReader()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()", "second-look"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"  # it has exec'd
        before_exec: dict[str, object] = {"user": "x", "command": "parent-before-exec", "slurm_job": None, "container": None}
        reader._fixed_facts = lambda base, stat: before_exec  # type: ignore[method-assign]
        first = reader.facts(child.pid, time.monotonic())
        del reader._fixed_facts  # type: ignore[method-assign]  # back to reading /proc
        second = reader.facts(child.pid, time.monotonic())
        assert first is not None and first["command"] == "parent-before-exec"
        assert second is not None and "second-look" in str(second["command"])
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
