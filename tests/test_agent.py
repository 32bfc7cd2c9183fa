"""The agent's frames against what the simulated GPUs hold, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from gputui.agent.sampler import Sampler
from gputui.frames import Hello, Sample, parse_frame
from gputui.sim.nvml import SimNvml
from tests.waiting import wait_until_gone


class ManualClock:
    """Simulated time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make(scenario: str, clock: ManualClock, processes: str = "synthetic", gpus: int | None = None) -> tuple[SimNvml, Sampler]:
    sim = SimNvml(scenario, seed=7, gpus=gpus, processes=processes, clock=clock)
    return sim, Sampler(sim, host="node-a", describe=sim.describe_process, clock=clock)


@pytest.fixture
def incident(clock: ManualClock) -> Iterator[tuple[SimNvml, Sampler]]:
    sim, sampler = make("incident", clock)
    yield sim, sampler
    sim.close()


def roundtrip(frame: dict[str, Any]) -> Any:
    """Through JSON and the dashboard's parser, as on the wire."""
    return parse_frame(json.dumps(frame))


def test_hello_reports_the_static_facts_the_simulated_boards_have(incident: tuple[SimNvml, Sampler]) -> None:
    sim, sampler = incident
    hello = roundtrip(sampler.hello(1.0))
    assert isinstance(hello, Hello)
    assert hello.driver_version == "550.127.08"
    assert [g.index for g in hello.gpus] == list(range(8))
    for g, s in zip(hello.gpus, sim.gpus, strict=True):
        if s.lost:
            assert g.lost and g.uuid is None
            continue
        assert g.uuid == s.uuid
        assert g.name == "NVIDIA H100 80GB HBM3"
        assert g.mem_total_mib == 81559
        assert (g.temp_slowdown_c, g.temp_shutdown_c) == (89, 92)
        assert g.power_max_w == 700.0
        assert g.pci_bus_id is not None and g.pci_bus_id.startswith("00000000:")


def test_sample_values_match_the_simulated_state(incident: tuple[SimNvml, Sampler]) -> None:
    sim, sampler = incident
    sampler.hello(1.0)
    sample = roundtrip(sampler.sample())
    assert isinstance(sample, Sample)
    for g, s in zip(sample.gpus, sim.gpus, strict=True):
        if s.lost:
            continue
        assert g.util_pct == round(s.util)
        assert g.temp_c == round(s.temp_c)
        assert g.mem_used_mib == s.mem_used_mib
        assert g.power_w == pytest.approx(s.power_w, abs=0.1)
        assert g.sm_clock_mhz == s.sm_clock_mhz
        pids = [p.pid for p in g.processes]
        assert pids == ([s.job.pid] if s.job is not None else [])


def test_unavailable_values_are_null_never_zero(clock: ManualClock) -> None:
    sim, sampler = make("healthy", clock)
    sampler.hello(1.0)
    sample = sampler.sample()
    for g in sample["gpus"]:
        assert g["fan_pct"] is None  # H100 SXM boards have no fan
        assert g["retired_pages"] is None  # page retirement gave way to row remapping
        assert g["mem_temp_c"] is not None
    sim.close()
    sim, sampler = make("mixed", clock)
    sampler.hello(1.0)
    sample = sampler.sample()
    a100_40 = [g for g in sample["gpus"] if g["mem_total_mib"] == 40960]
    assert a100_40 and all(g["mem_temp_c"] is None and isinstance(g["fan_pct"], int) for g in a100_40)
    mig = sample["gpus"][3]
    assert mig["util_pct"] is None and mig["mem_used_mib"] is not None
    # The older driver lacks the batched power field: the agent falls back to the single call.
    assert all(isinstance(g["power_w"], float) for g in sample["gpus"])
    assert all(g["pcie_rx_kib_s"] is None for g in sample["gpus"])
    sim.close()


def test_a_lost_gpu_is_reported_and_the_others_keep_reporting(incident: tuple[SimNvml, Sampler], clock: ManualClock) -> None:
    sim, sampler = incident
    sampler.hello(1.0)
    first = sampler.sample()
    assert first["gpus"][5]["lost"] is True
    assert first["gpus"][5]["util_pct"] is None and first["gpus"][5]["temp_c"] is None
    # Another GPU falls off the bus while the agent runs.
    sim.gpus[1].lost = True
    clock.now += 1
    second = sampler.sample()
    assert second["gpus"][1]["lost"] is True and second["gpus"][1]["temp_c"] is None
    assert all(isinstance(second["gpus"][i]["temp_c"], int) for i in (0, 2, 3, 4, 6, 7))


def test_incident_scenario_shows_its_four_problems(incident: tuple[SimNvml, Sampler], clock: ManualClock) -> None:
    _, sampler = incident
    sampler.hello(1.0)
    for _ in range(3):
        clock.now += 1
        sample = sampler.sample()
    gpus = sample["gpus"]
    assert gpus[2]["temp_c"] >= 89 and "hw_thermal_slowdown" in gpus[2]["throttle"]
    assert gpus[3]["ecc"]["volatile_uncorrected"] > 0 and gpus[3]["remapped_rows"]["pending"] is True
    assert gpus[5]["lost"] is True
    assert gpus[6]["util_pct"] == 0 and gpus[6]["mem_used_mib"] > 0 and gpus[6]["processes"]
    healthy = [gpus[i] for i in (0, 1, 4, 7)]
    assert all(g["throttle"] == [] or "hw_thermal_slowdown" not in g["throttle"] for g in healthy)


@pytest.mark.parametrize("scenario", ["healthy", "mixed"])  # mixed: driver 535, no batched power field
def test_at_most_five_nvml_calls_per_gpu_per_sample(clock: ManualClock, scenario: str) -> None:
    sim, sampler = make(scenario, clock)
    sampler.hello(1.0)
    sampler.sample()  # the first sample is complete and costs more, once
    per_sample = []
    handles = [sim.nvmlDeviceGetHandleByIndex(i) for i in range(sim.nvmlDeviceGetCount())]
    truth = [[sim.nvmlDeviceGetPowerUsage(h) / 1000.0 for h in handles]]  # the board's power at each sample, in W
    for _ in range(30):
        clock.now += 1
        before = sim.calls
        frame = sampler.sample()
        assert frame["nvml_calls"] == sim.calls - before  # the frame's count is the truth
        per_sample.append(frame["nvml_calls"] / len(frame["gpus"]))
        truth.append([sim.nvmlDeviceGetPowerUsage(h) / 1000.0 for h in handles])  # not counted: after the frame
        for g in frame["gpus"]:  # power in every frame, a second old at worst
            assert any(g["power_w"] == pytest.approx(t[g["index"]], abs=0.051) for t in truth[-2:]), (g["index"], truth[-2:])
    assert max(per_sample) <= 5
    sim.close()


def test_same_seed_same_values(clock: ManualClock) -> None:
    def run() -> list[tuple[Any, ...]]:
        sim, sampler = make("healthy", clock)
        sim.advance(120)
        sampler.hello(1.0)
        gpus = sampler.sample()["gpus"]
        sim.close()
        return [(g["util_pct"], g["temp_c"], g["mem_used_mib"], g["power_w"]) for g in gpus]

    assert run() == run()


def test_a_process_that_vanished_is_dropped_not_an_error(clock: ManualClock) -> None:
    sim, sampler = make("healthy", clock, processes="standin", gpus=2)
    try:
        sampler.hello(1.0)
        busy = [g for g in sim.gpus if g.job is not None and g.job.pid is not None]
        assert busy, "the scenario should start with a job"
        victim = busy[0].job
        assert victim is not None and victim.pid is not None
        child = sim.pool.children[victim.pid]  # type: ignore[union-attr]
        child.kill()
        child.wait()
        # NVML (the simulator, before its next step) still lists the pid.
        sample = sampler.sample()
        listed = {p["pid"] for g in sample["gpus"] for p in g["processes"]}
        assert victim.pid not in listed
        others = [g.job.pid for g in busy[1:] if g.job is not None]
        assert all(pid in listed for pid in others)
    finally:
        sim.close()


def test_standin_processes_are_real_and_read_through_proc(clock: ManualClock) -> None:
    sim, sampler = make("healthy", clock, processes="standin", gpus=2)
    try:
        sampler.hello(1.0)
        procs = [p for g in sampler.sample()["gpus"] for p in g["processes"]]
        assert procs
        for p in procs:
            assert os.path.exists(f"/proc/{p['pid']}")
            assert "gputui.sim.standin" in p["command"]
            assert p["rss_mib"] > 0 and p["started_at"] > 0
    finally:
        sim.close()


def test_each_process_reports_its_parent(clock: ManualClock) -> None:
    """The stand-ins are this test's children: the agent reads that from /proc, and it reaches the dashboard."""
    sim, sampler = make("healthy", clock, processes="standin", gpus=2)
    try:
        sampler.hello(1.0)
        sample = roundtrip(sampler.sample())
        assert isinstance(sample, Sample)
        procs = [p for g in sample.gpus for p in g.processes]
        assert procs
        with open("/proc/self/comm") as f:
            me = f.read().strip()
        assert {(p.ppid, p.parent_command) for p in procs} == {(os.getpid(), me)}
    finally:
        sim.close()


def test_synthetic_processes_come_in_families_under_their_launchers(clock: ManualClock) -> None:
    """As on a real host: ranks of one job under one launcher, sharing its user, job and command;
    a container's process under its shim; a launcher is never a GPU process itself."""
    sim, sampler = make("healthy", clock, gpus=8)
    try:
        sampler.hello(1.0)
        sample = roundtrip(sampler.sample())
        assert isinstance(sample, Sample)
        procs = [p for g in sample.gpus for p in g.processes]
        families: dict[int | None, list[Any]] = {}
        for p in procs:
            families.setdefault(p.ppid, []).append(p)
        assert None not in families and not set(families) & {p.pid for p in procs}
        ranks = max(families.values(), key=len)
        assert len(ranks) >= 2, "one launcher with several ranks"
        assert len({(p.user, p.slurm_job, p.container, p.command, p.parent_command) for p in ranks}) == 1
        shims = [p for p in procs if p.parent_command == "containerd-shim"]
        assert shims and all(p.container and len(p.container) == 12 and p.slurm_job is None for p in shims)
        assert all(p.container is None for p in procs if p.parent_command != "containerd-shim")
    finally:
        sim.close()


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gputui", "agent", *args]


def test_agent_once_prints_hello_and_one_sample() -> None:
    out = subprocess.run(agent_cmd("--sim", "healthy", "--once"), capture_output=True, text=True, timeout=60, check=True)
    frames = [parse_frame(line) for line in out.stdout.splitlines()]
    assert [type(f).__name__ for f in frames] == ["Hello", "Sample"]


def test_stand_ins_die_with_a_killed_agent() -> None:
    agent = subprocess.Popen(
        agent_cmd("--sim", "healthy", "--gpus", "3", "--interval", "0.2"),
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        parse_frame(agent.stdout.readline())
        sample = parse_frame(agent.stdout.readline())
        assert isinstance(sample, Sample)
        pids = [p.pid for g in sample.gpus for p in g.processes]
        assert pids
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    wait_until_gone(pids, timeout=10.0)


def test_agent_answers_commands_on_stdin() -> None:
    agent = subprocess.Popen(
        agent_cmd("--sim", "healthy", "--gpus", "1", "--sim-processes", "synthetic", "--interval", "5"),
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdin is not None and agent.stdout is not None
        agent.stdin.write('{"cmd": "ping", "id": 7}\n{"cmd": "format-disk", "id": 8}\nnot json\n')
        agent.stdin.flush()
        results: list[dict[str, Any]] = []
        while len(results) < 3:
            frame = json.loads(agent.stdout.readline())
            if frame["type"] == "result":
                results.append(frame)
        assert results[0]["id"] == 7 and results[0]["ok"] is True
        assert results[1]["ok"] is False and "unknown command" in results[1]["error"]
        assert results[2]["ok"] is False and "bad command" in results[2]["error"]
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_nvml_start_failures_say_what_to_check() -> None:
    import pynvml

    from gputui.agent.main import init_failure

    missing = init_failure(pynvml, pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    assert "NVIDIA driver installed" in missing
    unloaded = init_failure(pynvml, pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    assert "not loaded" in unloaded


def test_each_process_has_its_share_of_the_sms_and_memory_bandwidth(clock: ManualClock) -> None:
    sim, sampler = make("healthy", clock)
    try:
        sampler.hello(1.0)
        first = roundtrip(sampler.sample())
        busy = [g for g in first.gpus if g.processes]
        assert busy, "the healthy scenario runs jobs"
        for g in busy:  # one job per simulated GPU: it has the whole GPU's utilisation
            (p,) = g.processes
            assert (p.sm_pct, p.mem_bw_pct) == (g.util_pct, g.mem_util_pct)
        for _ in range(12):
            clock.now += 1
            frame = roundtrip(sampler.sample())
            assert all(p.sm_pct is not None and p.mem_bw_pct is not None for g in frame.gpus for p in g.processes)
    finally:
        sim.close()


def test_hello_lists_the_mig_instances_with_their_profiles(clock: ManualClock) -> None:
    sim, sampler = make("mixed", clock)
    hello = roundtrip(sampler.hello(1.0))
    sim.close()
    mig = hello.gpus[3]
    assert mig.mig_enabled is True and mig.mig_devices is not None
    # NVML has room for 7 MIG devices; the indices that hold none (NOT_FOUND) are left out.
    assert [d.index for d in mig.mig_devices] == [0, 1, 2]
    assert [d.profile for d in mig.mig_devices] == ["3g.40gb", "2g.20gb", "1g.10gb"]
    assert [d.mem_total_mib for d in mig.mig_devices] == [40192, 19968, 9728]
    assert [d.gpu_instance_id for d in mig.mig_devices] == [s.gpu_instance_id for s in sim.gpus[3].mig_layout]
    assert [d.uuid for d in mig.mig_devices] == sim.gpus[3].mig_uuids
    assert all(d.uuid and d.uuid.startswith("MIG-") for d in mig.mig_devices)
    assert all(g.mig_devices is None for g in hello.gpus[:3])  # not in MIG mode


def test_samples_carry_each_mig_instance_memory_and_processes(clock: ManualClock) -> None:
    """Within the five-call budget the instances are read in turns, so a job
    moving to another instance shows there within a round of turns."""
    sim, sampler = make("mixed", clock)
    sampler.hello(1.0)
    g = sim.gpus[3]
    job = g.job
    assert job is not None and job.pid is not None and g.job_instance() == 0
    first = roundtrip(sampler.sample()).gpus[3]
    assert first.mig is not None
    assert [(m.index, m.pids) for m in first.mig] == [(0, [job.pid]), (1, []), (2, [])]
    assert first.mig[0].mem_used_mib == g.mem_used_mib and first.mig[1].mem_used_mib == 0
    assert [p.pid for p in first.processes] == [job.pid]
    # The job ends; the next one lands on the 2g.20gb instance.
    g.end_job()
    g._start(ends_at=None, mem_mib=12000, util_target=60.0)
    sim.advance(1)  # gives the new job its process
    new = g.job
    assert new is not None and new.pid is not None and g.job_instance() == 1
    seen = []
    for _ in range(7):  # three instances, memory and processes each: six turns, and one to spare
        clock.now += 1
        frame = sampler.sample()
        assert frame["nvml_calls"] / len(frame["gpus"]) <= 5
        seen.append(roundtrip(frame).gpus[3].mig)
    last = seen[-1]
    assert last is not None
    assert [(m.index, m.pids) for m in last] == [(0, []), (1, [new.pid]), (2, [])]
    assert last[1].mem_used_mib == 12000 + 512 and last[0].mem_used_mib == 0
    sim.close()
