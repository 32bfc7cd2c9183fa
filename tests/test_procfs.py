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


def test_container_ids_from_real_looking_cgroup_files() -> None:
    """/proc/PID/cgroup as each runtime leaves it (cgroup v1 lists every controller)."""
    cid = "9b1deb4d3b7d" + "0123456789abcdef" * 3 + "4e5f"
    lines = {
        "docker, cgroup v1": f"12:memory:/docker/{cid}\n11:devices:/docker/{cid}\n1:name=systemd:/docker/{cid}\n",
        "docker, systemd driver": f"0::/system.slice/docker-{cid}.scope\n",
        "rootless docker": f"0::/user.slice/user-1000.slice/user@1000.service/app.slice/docker-{cid}.scope\n",
        "kubernetes, containerd, systemd driver": (
            "0::/kubepods.slice/kubepods-burstable.slice/"
            f"kubepods-burstable-pod0f7c5a3e_1b2d_4c5e_8f9a_0b1c2d3e4f5a.slice/cri-containerd-{cid}.scope\n"
        ),
        "containerd under its own service": (
            "0::/system.slice/containerd.service/"
            f"kubepods-besteffort-pod0f7c5a3e_1b2d_4c5e_8f9a_0b1c2d3e4f5a.slice:cri-containerd:{cid}\n"
        ),
        "kubernetes, cgroupfs driver": f"0::/kubepods/besteffort/pod0f7c5a3e-1b2d-4c5e-8f9a-0b1c2d3e4f5a/{cid}\n",
        "kubernetes guaranteed, cgroup v1": f"4:memory:/kubepods/pod0f7c5a3e-1b2d-4c5e-8f9a-0b1c2d3e4f5a/{cid}\n",
        "cri-o": f"0::/kubepods.slice/kubepods-pod0f7c5a3e_1b2d.slice/crio-{cid}.scope\n",
        "podman": f"0::/machine.slice/libpod-{cid}.scope/container\n",
        "rootless podman": f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{cid}.scope\n",
    }
    for runtime, text in lines.items():
        assert parse_cgroup(text) == (None, cid[:12]), runtime
    # A container's monitor is not the container, nor is a Kubernetes pod slice without one.
    assert parse_cgroup(f"0::/machine.slice/libpod-conmon-{cid}.scope\n") == (None, None)
    assert parse_cgroup("0::/kubepods.slice/kubepods-burstable.slice\n") == (None, None)
    # Slurm's job and a container together (a job running a container): both are reported.
    both = f"0::/system.slice/slurmstepd.scope/job_918273/step_0/user/task_0/docker-{cid}.scope\n"
    assert parse_cgroup(both) == ("918273", cid[:12])


def test_parent_pid_and_name_follow_a_process_whose_parent_exits() -> None:
    """Ranks are grouped by their launcher: the parent must be the live one, even after a re-parenting."""
    r, w = os.pipe()
    # The middle process starts a grandchild that blocks on our pipe, says its pid, waits for its stdin to close.
    code = (
        "import subprocess, sys; fd = int(sys.argv[1]); "
        "g = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=fd, pass_fds=(fd,)); "
        "print(g.pid, flush=True); sys.stdin.read()"
    )
    middle = subprocess.Popen([sys.executable, "-c", code, str(r)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(r,))
    os.close(r)
    reader = ProcReader()
    try:
        assert middle.stdout is not None and middle.stdin is not None
        grandchild = int(middle.stdout.readline())
        facts = reader.facts(grandchild, time.monotonic())
        assert facts is not None
        assert facts["ppid"] == middle.pid
        with open(f"/proc/{middle.pid}/comm") as f:
            assert facts["parent_command"] == f.read().strip()
        mine = reader.facts(middle.pid, time.monotonic())
        assert mine is not None and mine["ppid"] == os.getpid()
        middle.stdin.close()
        middle.wait()  # it has exited: its child now belongs to init (or a subreaper)
        facts = reader.facts(grandchild, time.monotonic())
        assert facts is not None and facts["ppid"] not in (middle.pid, None)
        with open(f"/proc/{facts['ppid']}/comm") as f:
            assert facts["parent_command"] == f.read().strip()
    finally:
        os.close(w)  # the grandchild's stdin ends: it exits
        if middle.poll() is None:
            middle.kill()
            middle.wait()
        if middle.stdout is not None:
            middle.stdout.close()


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
