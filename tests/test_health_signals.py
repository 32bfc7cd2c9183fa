"""Health signals from the agent: XIDs from the kernel log and from NVML's
event API, link and persistence fields, and the fleet store's XID log."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest

from gputui.agent import xid_events
from gputui.agent.kernel_log import MAX_EVENTS, MAX_PER_KIND, parse_xids, to_events
from gputui.agent.sampler import Sampler
from gputui.fleet.store import FleetStore
from gputui.frames import Sample, XidEvent, parse_frame
from gputui.health.rules import field_errors
from gputui.sim.driver import DriverState
from gputui.sim.nvml import SimNvml

FIXTURES = Path(__file__).parent / "fixtures"
# NVML's spelling of the bus ids of a four-GPU host, by index.
BUSES = ["00000000:18:00.0", "00000000:3B:00.0", "00000000:86:00.0", "00000000:AF:00.0"]
BOOT = 1795000000.0
HOST = "h"


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


# -- the kernel log ------------------------------------------------------------


def test_dmesg_xids_get_their_gpu_time_pid_and_words() -> None:
    events = to_events(parse_xids(lines("dmesg_xid.txt"), boot_time=BOOT), BUSES, now=BOOT + 10_000)
    assert [(e["xid"], e.get("gpu")) for e in events] == [(79, 1), (48, 2), (13, 0), (13, 0), (31, 3)]
    fell = events[0]
    assert fell["t"] == pytest.approx(BOOT + 8123.004533, abs=1e-3)
    assert "pid" not in fell and fell["text"] == "GPU has fallen off the bus."
    assert events[1]["pid"] == 48211 and events[1]["text"].startswith("An uncorrectable double bit error")
    assert events[2]["pid"] == 51234 and "Warp Exception" in events[2]["text"]  # a bus id with ".0" matches too
    assert all(e["source"] == "kernel" for e in events)
    assert all(XidEvent.model_validate(e) for e in events)  # what the dashboard accepts


def test_journal_xids_keep_their_real_time_and_an_unknown_bus_stays_unassigned() -> None:
    events = to_events(parse_xids(lines("journal_short_unix_xid.txt")), BUSES, now=BOOT)
    assert [(e["xid"], e.get("gpu"), e["t"]) for e in events] == [
        (63, 2, 1795910000.25),
        (94, 0, 1795910200.125),
        (119, None, 1795910400.5),  # 0000:d8:00 is no GPU of this host
        (13, 3, 1795910500.0),  # an older driver: no pid, no name
    ]
    assert events[1]["pid"] == 7777 and "pid" not in events[0]
    assert events[2]["text"].startswith("Timeout after 6s of waiting for RPC response")


def test_journal_short_format_lines_are_dated_this_year() -> None:
    now = time.mktime(time.strptime("2026 Nov 29 10:00:00", "%Y %b %d %H:%M:%S"))
    events = to_events(parse_xids(lines("journal_short_xid.txt"), now=now), BUSES, now=now)
    assert [(e["xid"], e["gpu"]) for e in events] == [(79, 1)]
    assert time.localtime(events[0]["t"])[:6] == (2026, 11, 28, 3, 12, 1)


def test_a_dmesg_without_a_boot_time_still_reports_the_xid() -> None:
    events = to_events(parse_xids(lines("dmesg_xid.txt"), boot_time=None), BUSES, now=BOOT)
    assert events[0]["xid"] == 79 and events[0]["t"] == BOOT


def xid_line(t: float, bus: str, xid: int) -> str:
    return f"{t:.6f} h kernel: NVRM: Xid (PCI:0000:{bus}:00): {xid}, pid=1, name=x, words {t:g}"


def test_only_the_most_recent_xids_of_a_kind_are_kept() -> None:
    storm = [f"[{i}.000000] NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=x, Graphics Exception {i}" for i in range(300)]
    events = to_events(parse_xids(storm, boot_time=0.0), BUSES, now=1000.0)
    assert [e["t"] for e in events] == [295.0, 296.0, 297.0, 298.0, 299.0]
    assert len(events) == MAX_PER_KIND


def test_a_burst_of_application_xids_does_not_push_out_an_older_critical_one() -> None:
    now = 1_795_000_000.0
    log = [xid_line(now - 1800, "3b", 95)]
    log += [xid_line(now - 1700 + i, "86", 31) for i in range(60)]
    events = to_events(parse_xids(log, now=now), BUSES, now=now)
    assert [(e["xid"], e["gpu"]) for e in events] == [(95, 1)] + [(31, 2)] * MAX_PER_KIND
    assert events[0]["t"] == now - 1800 and events[-1]["t"] == now - 1700 + 59
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)


def test_over_the_overall_cap_application_xids_go_first_and_the_order_stays() -> None:
    now = 1_795_000_000.0
    critical = [xid_line(now - 7200, "18", 79), xid_line(now - 7100, "3b", 48), xid_line(now - 7000, "af", 64)]
    buses = ("18", "3b", "86", "af")
    app = [xid_line(now - 3600 + i, bus, xid) for i in range(5) for bus in buses for xid in (13, 31, 43, 45, 68)]
    late = [xid_line(now - 10, "86", 94)]
    events = to_events(parse_xids(critical + app + late, now=now), BUSES, now=now)
    assert len(events) == MAX_EVENTS
    kept = [(e["xid"], e["gpu"]) for e in events]
    assert kept[:3] == [(79, 0), (48, 1), (64, 3)] and kept[-1] == (94, 2)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert events[3]["t"] > now - 3600  # the oldest application XIDs were the ones dropped


# -- a running agent -------------------------------------------------------------


class Agent:
    """``gputui agent --sim`` on a state dir, read frame by frame with a deadline."""

    def __init__(self, state_dir: Path, scenario: str = "incident", interval: float = 0.1) -> None:
        sim = ["--sim", scenario, "--gpus", "8", "--interval", str(interval)]
        argv = [sys.executable, "-m", "gputui", "agent", *sim, "--state-dir", str(state_dir), "--host-name", HOST]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.samples: list[Sample] = []
        self.frames: list[Any] = []

    def until(self, predicate: Callable[[Sample], bool], what: str, timeout: float = 20.0) -> Sample:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, "the agent stopped"
            frame = parse_frame(line)
            self.frames.append(frame)
            if isinstance(frame, Sample):
                self.samples.append(frame)
                if predicate(frame):
                    return frame
        raise AssertionError(f"no sample within {timeout}s with {what}")

    def more(self, n: int) -> None:
        """``n`` more samples."""
        target = len(self.samples) + n
        self.until(lambda _: len(self.samples) >= target, f"{n} more samples")

    def events(self) -> list[XidEvent]:
        return [e for s in self.samples for e in s.events]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(scenario: str = "incident") -> Agent:
        agent = Agent(tmp_path, scenario)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.stop()


def has_xid(xid: int) -> Callable[[Sample], bool]:
    return lambda s: any(e.xid == xid for e in s.events)


def test_the_lost_gpu_xid_from_before_start_and_a_new_ecc_xid_each_arrive_once(agents: Callable[..., Agent]) -> None:
    agent = agents()
    first = agent.until(lambda s: True, "a first sample")
    assert [(e.xid, e.gpu, e.source) for e in first.events] == [(79, 5, "kernel")]
    assert first.events[0].t < time.time() - 60  # it happened before the agent started
    assert first.gpus[5].lost
    ecc = agent.until(has_xid(48), "XID 48 from the event API")
    assert [(e.xid, e.gpu, e.source) for e in ecc.events] == [(48, 3, "nvml")]
    assert ecc.gpus[3].remapped_rows is not None and ecc.gpus[3].remapped_rows.pending
    agent.more(10)
    assert sorted((e.xid, e.source) for e in agent.events()) == [(48, "nvml"), (79, "kernel")]


def test_an_xid_injected_mid_stream_arrives_once_and_samples_keep_their_cadence(
    agents: Callable[..., Agent], tmp_path: Path
) -> None:
    agent = agents()
    agent.until(has_xid(48), "the planted XID 48")
    agent.more(3)
    DriverState(str(tmp_path), HOST).push_xid(gpu=1, xid=13)
    hit = agent.until(has_xid(13), "the injected XID 13", timeout=10)
    assert [(e.xid, e.gpu, e.source) for e in hit.events] == [(13, 1, "nvml")]
    agent.more(15)
    assert [e.xid for e in agent.events()].count(13) == 1
    seqs = [s.seq for s in agent.samples]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no sample was lost or held back
    assert max(s.sample_ms or 0.0 for s in agent.samples) < 100  # never waited on the event API
    gaps = [b.t - a.t for a, b in zip(agent.samples, agent.samples[1:], strict=False)]
    assert max(gaps) < 1.0  # at a 0.1 s interval, even on a loaded test machine


def test_a_healthy_host_reports_no_xids(agents: Callable[..., Agent]) -> None:
    agent = agents("healthy")
    agent.until(lambda s: s.seq >= 15, "15 samples")
    assert agent.events() == []


def test_the_store_logs_each_xid_once_across_agent_restarts(agents: Callable[..., Agent]) -> None:
    store = FleetStore()
    store.add_host(HOST)
    for run in range(3):
        agent = agents()
        agent.until(has_xid(48) if run == 0 else (lambda s: True), "this run's XIDs")
        agent.more(2)
        agent.stop()
        for frame in agent.frames:
            store.apply(HOST, frame)
        if run > 0:
            # After a restart the kernel log also holds the XID 48 the event API reported.
            assert sorted(e.xid for e in agent.samples[0].events) == [48, 79]
    assert [(e.xid, e.gpu, e.source) for e in store.hosts[HOST].events] == [(79, 5, "kernel"), (48, 3, "nvml")]


# -- fields, in process -----------------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Setup = Callable[[SimNvml], None]


def samples(scenario: str, n: int, gpus: int | None = None, setup: Setup | None = None) -> list[dict[str, Any]]:
    clock = ManualClock()
    sim = SimNvml(scenario, seed=3, gpus=gpus, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="a", describe=sim.describe_process, clock=clock)
    try:
        sampler.hello(1.0)
        if setup is not None:
            setup(sim)
        out = []
        for _ in range(n):
            clock.now += 1.0
            frame = sampler.sample()
            parse_frame(json.dumps(frame))  # the dashboard reads every one
            out.append(frame)
        return out
    finally:
        sampler.close()
        sim.close()


def test_link_counters_and_persistence_mode_as_each_board_has_them() -> None:
    h100 = samples("incident", 2)[-1]["gpus"]
    assert h100[3]["pcie_replays"] == 37 and h100[3]["persistence_mode"] is True
    assert set(h100[0]["nvlink"]) == {"crc_flit", "crc_data", "replay", "recovery"}
    assert "pcie_replays" not in h100[5] and h100[5]["lost"]  # nothing read from a lost GPU
    a100 = samples("mixed", 2)[-1]["gpus"]
    assert all("nvlink" not in g for g in a100)  # PCIe boards: no NVLink, no key
    assert all(g["persistence_mode"] is False and isinstance(g["pcie_replays"], int) for g in a100)


def test_time_spent_throttled_is_counted_per_reason() -> None:
    last = samples("incident", 4)[-1]["gpus"]
    throttled = last[2]["throttle_ms"]
    assert throttled["sw_thermal_slowdown"] == pytest.approx(1000.0)
    assert throttled["hw_thermal_slowdown"] == pytest.approx(700.0)
    assert "throttle_ms" not in last[0] or "hw_thermal_slowdown" not in last[0]["throttle_ms"]


def test_a_field_that_starts_failing_is_named_with_its_error() -> None:
    def break_it(sim: SimNvml) -> None:
        sim.fail_field(1, "NVML_FI_DEV_REMAPPED_UNC", sim.NVML_ERROR_UNKNOWN)

    gpus = samples("healthy", 2, gpus=2, setup=break_it)[-1]["gpus"]
    assert gpus[1]["field_errors"] == {"remap_unc": "unknown"}
    assert gpus[1]["remapped_rows"]["uncorrectable"] is None  # unknown, not 0
    assert "field_errors" not in gpus[0]


def test_an_xid_injected_in_process_comes_in_the_next_sample_once() -> None:
    got: list[list[dict[str, Any]]] = []

    def inject(sim: SimNvml) -> None:
        sim.inject_xid(4, 94)

    for frame in samples("healthy", 3, gpus=8, setup=inject):
        got.append(frame.get("events", []))
    assert [[(e["xid"], e["gpu"]) for e in events] for events in got] == [[(94, 4)], [], []]


# -- when the event API fails -------------------------------------------------------


def sample_until(
    sampler: Sampler, clock: ManualClock, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Samples, as the agent takes them, until one satisfies ``predicate``."""
    deadline = time.monotonic() + timeout
    pace = threading.Event()
    while time.monotonic() < deadline:
        clock.now += 1.0
        frame = sampler.sample()
        parse_frame(json.dumps(frame))
        if predicate(frame):
            return frame
        pace.wait(0.01)  # not a synchronisation: the condition above is
    raise AssertionError(f"no sample within {timeout}s with {what}")


def xid_errors(frame: dict[str, Any]) -> list[str | None]:
    return [(g.get("field_errors") or {}).get(xid_events.ERROR_KEY) for g in frame["gpus"]]


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimNvml, Sampler, ManualClock]]:
    """A four-GPU host whose sampler waits for XIDs in a thread, as the agent does."""
    monkeypatch.setattr(xid_events, "BACKOFF_S", 0.01)
    monkeypatch.setattr(xid_events, "BACKOFF_MAX_S", 0.05)
    clock = ManualClock()
    sim = SimNvml("healthy", seed=3, gpus=4, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="a", describe=sim.describe_process, clock=clock, events="thread")
    sampler.hello(1.0)
    yield sim, sampler, clock
    sampler.close()
    sim.close()


def test_failing_event_waits_are_reported_then_cleared_and_xids_still_come(
    threaded: tuple[SimNvml, Sampler, ManualClock],
) -> None:
    sim, sampler, clock = threaded
    assert sampler.xids is not None and sampler.xids.thread is not None
    sim.fail_event_wait(pynvml.NVML_ERROR_UNKNOWN)
    broken = sample_until(sampler, clock, lambda f: all(xid_errors(f)), "the failing wait in every GPU's field_errors")
    assert xid_errors(broken) == ["event wait: Unknown Error"] * 4
    parsed = parse_frame(json.dumps(broken))
    assert isinstance(parsed, Sample)
    finding = field_errors(parsed.gpus[0])  # the dashboard's "nvml" rule
    assert finding is not None and "xid_events" in finding.title
    assert sampler.xids.thread.is_alive()  # still listening, backing off
    sim.fail_event_wait(None)
    sample_until(sampler, clock, lambda f: not any(xid_errors(f)), "the error cleared")
    sim.inject_xid(2, 48)
    hit = sample_until(sampler, clock, lambda f: bool(f.get("events")), "the XID after the failures")
    assert [(e["xid"], e["gpu"], e["source"]) for e in hit["events"]] == [(48, 2, "nvml")]
    assert "field_errors" not in hit["gpus"][0]
    sim.inject_xid(0, 94)
    again = sample_until(sampler, clock, lambda f: bool(f.get("events")), "a second XID")
    assert [(e["xid"], e["gpu"]) for e in again["events"]] == [(94, 0)]


def test_the_event_thread_stops_promptly_while_it_backs_off(threaded: tuple[SimNvml, Sampler, ManualClock]) -> None:
    sim, sampler, clock = threaded
    assert sampler.xids is not None and sampler.xids.thread is not None
    sampler.xids.backoff_s = sampler.xids.backoff_max_s = 30.0
    sim.fail_event_wait(pynvml.NVML_ERROR_UNKNOWN)
    sample_until(sampler, clock, lambda f: all(xid_errors(f)), "the failing wait reported")
    started = time.monotonic()
    sampler.xids.close()
    assert not sampler.xids.thread.is_alive() and time.monotonic() - started < 10.0  # not the 30 s backoff
    assert sampler.xids.set is None  # freed


def test_a_gpu_lost_mid_run_leaves_the_event_set_and_the_others_xids_still_come() -> None:
    clock = ManualClock()
    sim = SimNvml("healthy", seed=3, gpus=4, processes="synthetic", clock=clock)
    sampler = Sampler(sim, host="a", describe=sim.describe_process, clock=clock)  # inline: one pump a sample
    try:
        sampler.hello(1.0)
        sampler.sample()
        assert sampler.xids is not None and sorted(sampler.xids.gpus.values()) == [0, 1, 2, 3]
        sim.gpus[1].lost = True  # every wait on a set with GPU 1 now answers GPU_IS_LOST
        clock.now += 1.0
        after = sampler.sample()
        assert after["gpus"][1]["lost"] and sorted(sampler.xids.gpus.values()) == [0, 2, 3]
        assert sampler.xids.errors() == {1: "not listening: GPU is lost"}
        assert xid_errors(after) == [None] * 4  # the lost GPU says more; the others listen again
        sim.inject_xid(2, 48)
        clock.now += 1.0
        hit = sampler.sample()
        assert [(e["xid"], e["gpu"]) for e in hit["events"]] == [(48, 2)]
    finally:
        sampler.close()
        sim.close()
