"""``gputui agent --act`` on a simulated host, next to the host's streaming
agent: what an operator's preview and apply do to the ledger, the GPUs'
compute mode and the processes on them, seen from outside."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gputui.agent.act_host import pid_start
from gputui.agent.procfs import parse_cgroup
from gputui.frames import Sample, parse_frame
from gputui.transport import bundle
from tests.act_agent import HOST, act, request
from tests.other_user import NOBODY, python_for_nobody
from tests.waiting import wait_until_gone

HOSTILE = "fan \"noise\" 'x'; rm -rf / $(touch PWNED) `touch PWNED2`\nsecond line: ünïcödé ✓ \\n"


def preview_then_apply(state_dir: Path, action: str, **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    preview = act(state_dir, request("preview", action, **fields))
    assert preview["ok"], preview["error"]
    extra = {"expect_version": preview["ledger_version"]}
    if action == "kill":
        extra["pid_start"] = preview["affected"][0]["pid_start"]
    return preview, act(state_dir, request("apply", action, **fields, **extra))


class Streaming:
    """The host's streaming agent, with stand-in processes, sharing the state dir."""

    def __init__(self, state_dir: Path) -> None:
        sim = ["--sim", "healthy", "--seed", "0", "--gpus", "2", "--interval", "0.05"]
        argv = [sys.executable, "-m", "gputui", "agent", *sim, "--state-dir", str(state_dir), "--host-name", HOST]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def until(self, predicate: Callable[[Sample], bool], what: str, timeout: float = 20.0) -> Sample:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, "the streaming agent stopped"
            frame = parse_frame(line)
            if isinstance(frame, Sample) and predicate(frame):
                return frame
        raise AssertionError(f"no sample within {timeout}s with {what}")

    def pids(self, gpu: int) -> list[int]:
        sample = self.until(lambda s: bool(s.gpus[gpu].processes), f"a process on GPU {gpu}")
        return [p.pid for p in sample.gpus[gpu].processes]

    def close(self) -> None:
        assert self.proc.stdout is not None
        self.proc.stdout.close()  # a writer blocked on a full pipe gets EPIPE and exits
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def streaming(tmp_path: Path) -> Iterator[Streaming]:
    agent = Streaming(tmp_path)
    yield agent
    agent.close()


def test_reserve_then_release(tmp_path: Path) -> None:
    preview, applied = preview_then_apply(tmp_path, "reserve", gpus=["1"], until=time.time() + 3600, **{"for": "bob"})
    assert preview["gpus"][0]["state"] == "free" and applied["gpus"][0]["state"] == "reserved"
    assert applied["gpus"][0]["holder"] == "bob" and applied["ledger_version"] == 1
    uuid = applied["gpus"][0]["uuid"]
    taken = act(tmp_path, request("preview", "reserve", gpus=[uuid], **{"for": "carol"}))
    assert not taken["ok"] and taken["conflict"] and "reserved for bob" in taken["error"]
    _, released = preview_then_apply(tmp_path, "release", gpus=[uuid])
    assert released["gpus"][0]["state"] == "free"
    again = act(tmp_path, request("apply", "release", gpus=["1"]))
    assert not again["ok"] and "not reserved" in again["error"]
    history = json.loads((tmp_path / f"ledger-{HOST}.json").read_text())["history"]
    assert [(h["action"], h["ok"], h["audit_id"]) for h in history] == [
        ("reserve", True, "a1b2c3"),
        ("release", True, "a1b2c3"),
        ("release", False, "a1b2c3"),
    ]


def test_preview_changes_nothing(tmp_path: Path) -> None:
    act(tmp_path, request("apply", "reserve", gpus=["0"], **{"for": "bob"}))
    path = tmp_path / f"ledger-{HOST}.json"
    before, stat = path.read_bytes(), path.stat()
    for req in (
        request("preview", "drain", gpus=["1"], backend="nvml"),
        request("preview", "release", gpus=["0"]),
        request("preview", "drain-node", backend="ledger"),
    ):
        answer = act(tmp_path, req)
        assert answer["ok"] and answer["ledger_version"] == 1 and answer["steps"] and answer["done"] == []
    assert path.read_bytes() == before and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_bad_requests_are_refused_saying_why(tmp_path: Path) -> None:
    cases = [
        (request("preview", "format-disk"), "unknown action"),
        (request("preview", "drain", gpus=["0"], reason=" "), "reason is required"),
        (request("preview", "drain", gpus=["9"]), "no GPU '9'"),
        (request("preview", "drain", gpus=["GPU-nope"]), "no GPU 'GPU-nope'"),
        (request("preview", "drain", gpus=[]), "at least one GPU"),
        (request("preview", "reserve", gpus=["0"]), "needs 'for'"),
        (request("preview", "drain", gpus=["0"], backend="kubernetes"), "unknown backend"),
        (request("preview", "kill", pid="42"), "needs 'pid'"),
    ]
    for req, why in cases:
        answer = act(tmp_path, req)
        assert not answer["ok"] and why in answer["error"], (req, answer["error"])


def test_hostile_reasons_are_stored_verbatim_and_never_run(tmp_path: Path) -> None:
    _, applied = preview_then_apply(tmp_path, "drain", gpus=["0"], reason=HOSTILE)
    assert applied["ok"]
    held = next(iter(json.loads((tmp_path / f"ledger-{HOST}.json").read_text(encoding="utf-8"))["gpus"].values()))
    assert held["reason"] == HOSTILE
    node = act(tmp_path, request("preview", "drain-node", backend="slurm", reason=HOSTILE))
    assert node["commands"] == [["scontrol", "update", f"NodeName={HOST}", "State=DRAIN", f'Reason="{HOSTILE}"']]
    failed = act(tmp_path, request("apply", "drain-node", backend="slurm", reason=HOSTILE))
    # No controller answers here: scontrol's own words come back, as it says them.
    said = subprocess.run(node["commands"][0], capture_output=True, text=True, check=False)
    assert not failed["ok"] and failed["error"] == said.stderr.strip()
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()


def test_drain_with_nvml_sets_the_compute_mode_the_streaming_agent_reads(tmp_path: Path, streaming: Streaming) -> None:
    streaming.until(lambda s: s.gpus[0].compute_mode == "default", "GPU 0 in compute mode default")
    _, drained = preview_then_apply(tmp_path, "drain", gpus=["0"], backend="nvml")
    assert drained["ok"] and any("PROHIBITED (was DEFAULT)" in d for d in drained["done"])
    sample = streaming.until(lambda s: s.gpus[0].compute_mode == "prohibited", "GPU 0 PROHIBITED")
    assert sample.gpus[1].compute_mode == "default"
    seen = streaming.until(lambda s: s.ledger is not None and "0" in s.ledger.gpus, "the drain in the ledger summary")
    assert seen.ledger is not None and seen.ledger.gpus["0"].state == "drained"
    _, undrained = preview_then_apply(tmp_path, "undrain", gpus=["0"], backend="nvml")
    assert undrained["ok"]
    streaming.until(lambda s: s.gpus[0].compute_mode == "default" and s.ledger is None, "GPU 0 back to default")


def test_kill_a_process_that_honours_sigterm(tmp_path: Path, streaming: Streaming) -> None:
    (pid,) = streaming.pids(0)
    preview, applied = preview_then_apply(tmp_path, "kill", pid=pid)
    assert preview["affected"][0]["pid"] == pid and "gputui.sim.standin" in preview["affected"][0]["command"]
    assert applied["ok"] and any("ended after SIGTERM" in d for d in applied["done"])
    streaming.until(lambda s: pid not in [p.pid for p in s.gpus[0].processes], f"pid {pid} gone from GPU 0")
    wait_until_gone([pid], timeout=10.0)  # reaped by the simulator, not left a zombie


def test_a_process_ignoring_sigterm_is_killed_only_when_asked(tmp_path: Path, streaming: Streaming) -> None:
    (pid,) = streaming.pids(1)  # every stand-in on GPU 1 ignores SIGTERM
    _, refused = preview_then_apply(tmp_path, "kill", pid=pid, term_wait_s=0.5)
    assert not refused["ok"] and not refused["conflict"]
    assert refused["error"] == (
        f"timed out: pid {pid} still running 0.5 s after SIGTERM (SIGTERM was not honoured); "
        "no SIGKILL was sent: ask again with SIGKILL (--kill-after)"
    )
    assert refused["done"] == [f"sent SIGTERM to pid {pid}"]  # it was done, not refused
    assert os.path.exists(f"/proc/{pid}")
    started = time.monotonic()
    _, killed = preview_then_apply(tmp_path, "kill", pid=pid, term_wait_s=0.5, kill_after=True)
    assert killed["ok"] and any("sent SIGKILL" in d for d in killed["done"])
    assert time.monotonic() - started >= 0.5
    wait_until_gone([pid], timeout=10.0)


def test_kill_refuses_pids_not_on_a_gpu_and_stale_start_times(tmp_path: Path, streaming: Streaming) -> None:
    mine = act(tmp_path, request("preview", "kill", pid=os.getpid()))
    assert not mine["ok"] and "not a process on any GPU" in mine["error"]
    (pid,) = streaming.pids(0)
    start = pid_start(pid)
    assert start is not None
    stale = act(tmp_path, request("apply", "kill", pid=pid, pid_start=start - 1))
    assert not stale["ok"] and stale["conflict"] and "another process" in stale["error"]
    assert pid_start(pid) == start  # untouched
    bare = act(tmp_path, request("apply", "kill", pid=pid))
    assert not bare["ok"] and "pid_start" in bare["error"]


def test_slurm_jobs_are_read_from_both_cgroup_layouts() -> None:
    assert parse_cgroup("0::/system.slice/slurmstepd.scope/job_123/step_batch/user/task_0\n")[0] == "123"
    assert parse_cgroup("4:memory:/slurm/uid_1000/job_123/step_0\n")[0] == "123"


def test_drain_with_slurm_offers_drain_node_and_names_the_others(tmp_path: Path, streaming: Streaming) -> None:
    streaming.pids(1)
    answer = act(tmp_path, request("preview", "drain", gpus=["0"], backend="slurm"))
    assert answer["ok"] and any("drain-node" in n for n in answer["notes"])
    assert 1 in [a["gpu"] for a in answer["affected"]]


def test_the_nvml_backend_says_it_needs_root(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the agent as another user")
    state = Path(tempfile.mkdtemp(prefix="gputui-nonroot-"))
    try:
        state.chmod(0o777)
        # Nobody may be unable to read the checkout (a clone under /root, a mkdtemp folder): it runs the
        # agent as a GPU host does, from the bundle, with an interpreter of the system's.
        agent_zip = state / "agent.zip"
        bundle.write(agent_zip)
        agent_zip.chmod(0o644)
        python = python_for_nobody()
        sim = ["--sim", "healthy", "--seed", "0", "--gpus", "2"]
        argv = [*NOBODY, python, "-I", "-S", str(agent_zip), "--act", *sim, "--state-dir", str(state), "--host-name", HOST]

        def as_nobody(req: dict[str, Any]) -> dict[str, Any]:
            done = subprocess.run(argv, input=json.dumps(req), capture_output=True, text=True, timeout=60)
            assert done.stdout, done.stderr
            answer: dict[str, Any] = json.loads(done.stdout)
            return answer

        preview = as_nobody(request("preview", "drain", gpus=["0"], backend="nvml"))
        assert not preview["ok"] and "needs root" in preview["error"] and "uid 65534" in preview["error"]
        applied = as_nobody(request("apply", "drain", gpus=["0"], backend="nvml"))
        assert not applied["ok"] and "Insufficient Permissions" in applied["error"] and "needs root" in applied["error"]
        assert (state / f"ledger-{HOST}.json").stat().st_uid == 65534  # the refusal is on record, written as nobody
        recorded = act(state, request("preview", "drain", gpus=["0"], backend="nvml"))
        assert recorded["ok"] and recorded["gpus"][0]["state"] == "free"
    finally:
        shutil.rmtree(state)


def test_the_streaming_agent_reapplies_nvml_drains_after_a_reboot(tmp_path: Path) -> None:
    _, drained = preview_then_apply(tmp_path, "drain", gpus=["1"], backend="nvml")
    assert drained["ok"]
    os.unlink(tmp_path / f"sim-driver-{HOST}.json")  # the "reboot": the driver forgot every compute mode
    agent = Streaming(tmp_path)
    try:
        sample = agent.until(lambda s: s.gpus[1].compute_mode is not None, "GPU 1's compute mode")
        assert sample.gpus[1].compute_mode == "prohibited"
    finally:
        agent.close()


def test_the_reserve_step_says_until_as_a_local_time_and_how_far_off(tmp_path: Path) -> None:
    until = time.time() + 7200
    answer = act(tmp_path, request("preview", "reserve", gpus=["1"], until=until, **{"for": "bob"}))
    assert answer["ok"], answer["error"]
    local = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(until))
    assert answer["steps"] == [f"reserve GPU 1 ({answer['gpus'][0]['uuid']}) for bob until {local} (in 2h)"]
