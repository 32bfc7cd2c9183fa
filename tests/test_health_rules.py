"""The health rules and engine: what an operator would see alert, and when.

Stores are built from real frames (JSON through ``parse_frame``, or the
in-process demo's simulated hosts); time is a settable clock, so hold,
clear and hysteresis are shown without sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest

from gputui.config import Thresholds
from gputui.fleet.store import FleetStore
from gputui.frame_decoder import FrameDecoder
from gputui.frames import Hello, Sample, parse_frame
from gputui.health.engine import HealthEngine
from gputui.health.model import Alert, Severity
from gputui.health.report import affected_processes, markdown_report
from gputui.health.xid import APPLICATION_XIDS, XID_TABLE, XidClass, recovery_action, xid_info
from gputui.protocol import PROTOCOL_VERSION
from gputui.snapshot import collect
from gputui.sources.demo import DemoFleet
from tests.health_data import HOST, T0, Fleet, gpu

HOUR = 3600.0


def found(alerts: list[Alert]) -> set[tuple[str, int | None]]:
    return {(a.rule, a.gpu) for a in alerts}


def one(alerts: list[Alert], rule: str) -> Alert:
    matching = [a for a in alerts if a.rule == rule]
    assert len(matching) == 1, [(a.rule, a.title) for a in alerts]
    return matching[0]


# -- the XID table ------------------------------------------------------------------
def test_the_xid_table_covers_the_common_xids_with_advice() -> None:
    required = {13, 31, 32, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 119, 120, 154}
    assert required <= set(XID_TABLE)
    for info in XID_TABLE.values():
        assert info.meaning and info.advice, info.xid


def test_the_device_plugins_application_xids_are_the_application_class() -> None:
    assert {13, 31, 43, 45, 68} == APPLICATION_XIDS
    for xid in (13, 31, 43, 45, 68):
        assert xid_info(xid).cls is XidClass.APPLICATION
        assert xid_info(xid).severity is Severity.INFO  # a user's bug does not page anyone
    for xid in (48, 79, 95, 119):
        assert xid_info(xid).cls is XidClass.HARDWARE
        assert xid_info(xid).severity is Severity.CRITICAL


def test_the_operators_words_for_79_and_48() -> None:
    assert xid_info(79).advice == "GPU has fallen off the bus: drain the node and reseat or replace; jobs on it are lost"
    assert "reset the GPU when idle" in xid_info(48).advice


def test_an_unknown_xid_is_a_warning_that_says_to_look_it_up() -> None:
    info = xid_info(999)
    assert info.severity is Severity.WARNING
    assert "999" in info.advice


def test_xid_154_advice_follows_what_the_driver_asks_now() -> None:
    info = xid_info(154)
    severity, advice = recovery_action(info, "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)")
    assert severity is Severity.CRITICAL and "reboot" in advice
    severity, advice = recovery_action(info, "GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)")
    assert severity is Severity.INFO


# -- hold, clear, hysteresis ----------------------------------------------------------
def test_a_condition_alerts_only_after_it_held_and_since_is_when_it_was_first_seen() -> None:
    fleet = Fleet(temp_margin_c=5, alert_hold_s=10, alert_clear_s=30)
    engine = fleet.engine()
    fleet.sample(gpu(temp_c=86))  # 3 C below slowdown
    first_seen = fleet.wall.t
    assert engine.evaluate(fleet.store) == []
    for _ in range(9):
        fleet.sample(gpu(temp_c=86))
        assert engine.evaluate(fleet.store) == [], fleet.wall.t - first_seen
    fleet.sample(gpu(temp_c=86))
    alert = one(engine.evaluate(fleet.store), "thermal")
    assert alert.since == first_seen
    assert alert.severity is Severity.WARNING
    assert (alert.host, alert.gpu, alert.where) == (HOST, 0, "gpu-01:0")
    assert alert.evidence["temp"] == "86 C" and alert.evidence["slowdown at"] == "89 C"


def test_a_condition_gone_before_the_hold_time_never_alerts() -> None:
    fleet = Fleet(alert_hold_s=10)
    engine = fleet.engine()
    for _ in range(6):  # hot for 5 s, cool for 1 s, and again: never 10 s in a row
        for temp in (86, 86, 86, 86, 86, 70):
            fleet.sample(gpu(temp_c=temp))
            assert engine.evaluate(fleet.store) == []


def test_a_temperature_hovering_at_the_threshold_alerts_once_and_does_not_flap() -> None:
    fleet = Fleet(temp_margin_c=5, temp_hysteresis_c=2, alert_hold_s=5, alert_clear_s=20)
    engine = fleet.engine()
    seen: list[bool] = []
    sinces: set[float] = set()
    for i in range(120):  # margin 5 (alerting), then 6 (within the band), for two minutes
        fleet.sample(gpu(temp_c=84 if i % 2 == 0 else 83))
        alerts = engine.evaluate(fleet.store)
        seen.append(bool(alerts))
        sinces |= {a.since for a in alerts}
    first_on = seen.index(True)
    assert first_on == 5
    assert all(seen[first_on:]), "the alert went away while the temperature hovered at the threshold"
    assert len(sinces) == 1

    for _ in range(20):  # margin 8: clear of the band, but not for 20 s yet
        fleet.sample(gpu(temp_c=81))
        assert engine.evaluate(fleet.store)
    fleet.sample(gpu(temp_c=81))
    assert engine.evaluate(fleet.store) == []


def test_a_temperature_only_within_the_band_never_starts_an_alert() -> None:
    fleet = Fleet(temp_margin_c=5, temp_hysteresis_c=2, alert_hold_s=0)
    engine = fleet.engine()
    for _ in range(30):
        fleet.sample(gpu(temp_c=83))  # margin 6: inside the band, outside the threshold
        assert engine.evaluate(fleet.store) == []


def test_memory_alerts_over_the_threshold_and_clears_a_few_points_below() -> None:
    fleet = Fleet(mem_used_pct=95, mem_hysteresis_pct=3, alert_hold_s=0, alert_clear_s=0)
    engine = fleet.engine()
    total = 81559
    fleet.sample(gpu(mem_used_mib=int(total * 0.96)))
    assert one(engine.evaluate(fleet.store), "memory").title == "GPU 0 memory 96% full"
    fleet.sample(gpu(mem_used_mib=int(total * 0.93)))  # below 95 but within 3 points: still on
    assert found(engine.evaluate(fleet.store)) == {("memory", 0)}
    fleet.sample(gpu(mem_used_mib=int(total * 0.90)))
    assert engine.evaluate(fleet.store) == []


def test_severity_rises_at_once_and_falls_only_after_the_clear_time() -> None:
    fleet = Fleet(alert_hold_s=0, alert_clear_s=10)
    engine = fleet.engine()
    fleet.sample(gpu(temp_c=86))
    assert one(engine.evaluate(fleet.store), "thermal").severity is Severity.WARNING
    fleet.sample(gpu(temp_c=91, throttle=["hw_thermal_slowdown"]))  # 1 C from shutdown
    assert one(engine.evaluate(fleet.store), "thermal").severity is Severity.CRITICAL
    for _ in range(10):
        fleet.sample(gpu(temp_c=86))
        assert one(engine.evaluate(fleet.store), "thermal").severity is Severity.CRITICAL
    fleet.sample(gpu(temp_c=86))  # lower for 10 s
    assert one(engine.evaluate(fleet.store), "thermal").severity is Severity.WARNING


def test_an_active_alerts_words_follow_its_gpu_from_pass_to_pass() -> None:
    """An alert is kept from one pass to the next only while everything it says is as it was: a
    temperature that moves is in the next pass's title and evidence, and back again after."""
    fleet = Fleet(alert_hold_s=0)
    engine = fleet.engine()
    said = []
    for temp in (86, 87, 87, 86):
        fleet.sample(gpu(temp_c=temp))
        alert = one(engine.evaluate(fleet.store), "thermal")
        said.append((alert.title, alert.evidence["temp"], alert.since))
    assert said == [
        ("GPU 0 running hot at 86 C, 3 C below its slowdown point", "86 C", T0 + 1),
        ("GPU 0 running hot at 87 C, 2 C below its slowdown point", "87 C", T0 + 1),
        ("GPU 0 running hot at 87 C, 2 C below its slowdown point", "87 C", T0 + 1),
        ("GPU 0 running hot at 86 C, 3 C below its slowdown point", "86 C", T0 + 1),
    ]


# -- the rules, one by one ----------------------------------------------------------------
def test_an_xid_alerts_at_once_for_the_window_after_it_happened() -> None:
    fleet = Fleet(xid_window_minutes=10, alert_hold_s=30)
    engine = fleet.engine()
    fleet.sample(gpu(), events=[{"xid": 13, "gpu": 0, "t": T0 + 0.5, "source": "nvml", "pid": 4242}])
    alert = one(engine.evaluate(fleet.store), "xid")
    assert alert.key == "xid:gpu-01:0:13"
    assert alert.severity is Severity.INFO
    assert alert.since == T0 + 0.5
    assert alert.evidence["class"] == "application"
    assert alert.evidence["pid"] == "4242"
    for _ in range(7):  # later samples carry no event: the engine remembers it
        fleet.sample(gpu(), step=75)
        assert found(engine.evaluate(fleet.store)) == {("xid", 0)}
    fleet.sample(gpu(), step=75)  # 10 min and half a second after the event
    assert engine.evaluate(fleet.store) == []


def test_xids_of_a_sample_never_evaluated_still_alert_when_the_engine_observed_it() -> None:
    fleet = Fleet()
    engine = fleet.engine(hold_s=0)
    fleet.store.listeners.append(lambda: engine.observe(fleet.store))  # as gputui check does
    fleet.sample(gpu(), events=[{"xid": 94, "gpu": 0, "t": T0, "source": "nvml"}])
    fleet.sample(gpu())
    fleet.sample(gpu())
    alert = one(engine.evaluate(fleet.store), "xid")
    assert alert.severity is Severity.WARNING and "reset the GPU when idle" in alert.advice


def test_a_lost_gpu_is_one_critical_alert_citing_its_xid_79_however_old() -> None:
    fleet = Fleet(gpus=2, xid_window_minutes=60)
    engine = fleet.engine(hold_s=30)
    xid = {"xid": 79, "gpu": 1, "t": T0 - 2 * HOUR, "source": "kernel", "text": "GPU has fallen off the bus."}
    fleet.sample(gpu(0), {"index": 1, "lost": True}, events=[xid])
    alerts = engine.evaluate(fleet.store)
    assert found(alerts) == {("lost", 1)}  # at once, and no separate XID alert for the same fault
    lost = alerts[0]
    assert lost.severity is Severity.CRITICAL
    assert lost.advice == "GPU has fallen off the bus: drain the node and reseat or replace; jobs on it are lost"
    assert lost.evidence["xid"].startswith("79 (GPU has fallen off the bus)")
    assert "kernel log" in lost.evidence["xid"]
    assert lost.since == T0 - 2 * HOUR


def test_uncorrected_ecc_with_a_pending_remap_says_reset_when_idle() -> None:
    fleet = Fleet()
    engine = fleet.engine(hold_s=0)
    ecc = {"volatile_corrected": 14, "volatile_uncorrected": 2, "aggregate_corrected": 310, "aggregate_uncorrected": 2}
    rows = {"correctable": 1, "uncorrectable": 2, "pending": True, "failure": False}
    fleet.sample(gpu(ecc=ecc, remapped_rows=rows))
    alerts = engine.evaluate(fleet.store)
    assert found(alerts) == {("ecc", 0), ("remap", 0)}
    ecc_alert, remap_alert = one(alerts, "ecc"), one(alerts, "remap")
    assert ecc_alert.severity is Severity.CRITICAL
    assert ecc_alert.advice.startswith("reset the GPU when idle")
    assert ecc_alert.evidence["uncorrected"] == "2 since reset, 2 lifetime"
    assert remap_alert.severity is Severity.WARNING
    assert remap_alert.advice.startswith("reset the GPU when idle")
    assert alerts[0] is ecc_alert  # worst first


def test_a_failed_row_remap_says_replace_and_old_uncorrected_errors_are_information() -> None:
    fleet = Fleet()
    engine = fleet.engine(hold_s=0)
    ecc = {"volatile_corrected": 0, "volatile_uncorrected": 0, "aggregate_corrected": 40, "aggregate_uncorrected": 3}
    rows = {"correctable": 0, "uncorrectable": 512, "pending": False, "failure": True}
    fleet.sample(gpu(ecc=ecc, remapped_rows=rows))
    alerts = engine.evaluate(fleet.store)
    remap = one(alerts, "remap")
    assert remap.severity is Severity.CRITICAL and "replace" in remap.advice
    assert one(alerts, "ecc").severity is Severity.INFO


def test_a_pending_page_retirement_on_an_older_board_says_reset() -> None:
    fleet = Fleet()
    engine = fleet.engine(hold_s=0)
    fleet.sample(gpu(remapped_rows=None, retired_pages={"single_bit": 3, "double_bit": 1, "pending": True}))
    alert = one(engine.evaluate(fleet.store), "retired")
    assert alert.severity is Severity.WARNING and "reset the GPU when idle" in alert.advice


def test_error_counters_alert_when_they_climb_not_for_their_level() -> None:
    fleet = Fleet(counter_window_minutes=5)
    engine = fleet.engine(hold_s=0, clear_s=0)
    busy_link = {"crc_flit": 9, "crc_data": 0, "replay": 0, "recovery": 0}
    for _ in range(3):  # high but steady since boot: nothing is happening now
        fleet.sample(gpu(pcie_replays=37, nvlink=busy_link))
        assert engine.evaluate(fleet.store) == []
    fleet.sample(gpu(pcie_replays=45, nvlink=dict(busy_link, replay=2)))
    alerts = engine.evaluate(fleet.store)
    assert found(alerts) == {("pcie", 0), ("nvlink", 0)}
    assert one(alerts, "pcie").title == "GPU 0 PCIe replays climbing (+8 in 5 min)"
    assert one(alerts, "nvlink").severity is Severity.WARNING
    for _ in range(4):
        fleet.sample(gpu(pcie_replays=45, nvlink=dict(busy_link, replay=2)), step=60)
        assert found(engine.evaluate(fleet.store)) == {("pcie", 0), ("nvlink", 0)}
    fleet.sample(gpu(pcie_replays=45, nvlink=dict(busy_link, replay=2)), step=61)  # the rise is over 5 min old
    assert engine.evaluate(fleet.store) == []


def test_corrected_ecc_climbing_is_information() -> None:
    fleet = Fleet()
    engine = fleet.engine(hold_s=0)
    ecc = {"volatile_corrected": 5, "volatile_uncorrected": 0, "aggregate_corrected": 50, "aggregate_uncorrected": 0}
    fleet.sample(gpu(ecc=ecc))
    assert engine.evaluate(fleet.store) == []  # the first look is the baseline
    fleet.sample(gpu(ecc=dict(ecc, volatile_corrected=7, aggregate_corrected=52)))
    alert = one(engine.evaluate(fleet.store), "ecc")
    assert alert.severity is Severity.INFO and "+2" in alert.title


def test_thermal_slowdown_and_the_power_brake_are_told_apart() -> None:
    fleet = Fleet(gpus=2)
    engine = fleet.engine(hold_s=0)
    fleet.sample(gpu(0, temp_c=88, throttle=["sw_thermal_slowdown"]), gpu(1, throttle=["hw_power_brake", "hw_slowdown"]))
    alerts = engine.evaluate(fleet.store)
    assert found(alerts) == {("thermal", 0), ("throttle", 1)}
    assert one(alerts, "thermal").title == "GPU 0 thermal slowdown at 88 C"
    assert "power brake" in one(alerts, "throttle").title


def test_near_shutdown_is_critical() -> None:
    fleet = Fleet()
    engine = fleet.engine(hold_s=0)
    fleet.sample(gpu(temp_c=91, throttle=["hw_thermal_slowdown", "sw_thermal_slowdown"]))
    alert = one(engine.evaluate(fleet.store), "thermal")
    assert alert.severity is Severity.CRITICAL
    assert alert.title == "GPU 0 thermal slowdown at 91 C, 1 C from shutdown"


def test_persistence_off_is_one_information_alert_per_host_and_nvml_errors_are_named() -> None:
    fleet = Fleet(gpus=3)
    engine = fleet.engine(hold_s=0)
    fleet.sample(
        gpu(0, persistence_mode=False),
        gpu(1, persistence_mode=False, field_errors={"pcie_replays": "Unknown Error"}),
        gpu(2),
    )
    alerts = engine.evaluate(fleet.store)
    assert found(alerts) == {("persistence", None), ("nvml", 1)}
    assert one(alerts, "persistence").evidence == {"GPUs": "0, 1"}
    nvml = one(alerts, "nvml")
    assert nvml.severity is Severity.INFO and nvml.evidence == {"pcie_replays": "Unknown Error"}


def idle_gpu(started_at: float, util: int = 0) -> dict[str, Any]:
    proc = {"pid": 5151, "user": "bob", "command": "jupyter-lab", "gpu_mem_mib": 30720, "started_at": started_at}
    return gpu(util_pct=util, mem_used_mib=31232, processes=[proc])


def test_idle_holding_from_history_is_a_warning() -> None:
    fleet = Fleet(interval=10.0, idle_holding_minutes=15)  # a sample each 10 s: 90 samples are 15 min
    engine = fleet.engine(hold_s=0)
    for i in range(89):
        fleet.sample(idle_gpu(started_at=T0), step=10.0)
        assert engine.evaluate(fleet.store) == [], i  # the process is too young to say, the history too short
    fleet.sample(idle_gpu(started_at=T0), step=10.0)
    alert = one(engine.evaluate(fleet.store), "idle-holding")
    assert alert.severity is Severity.WARNING
    assert alert.evidence["users"] == "bob"
    assert alert.evidence["basis"] == "history: idle for at least 15m"  # 90 idle samples 10 s apart
    assert "for 15m+" in alert.title
    assert alert.since == engine.clock() - 900  # idle since the first of them


def test_idle_memory_held_with_no_process_listed_is_idle_holding_and_freed_memory_is_not() -> None:
    """Memory held by what the host cannot list (a process in another namespace) is held all the
    same; a GPU idle with its memory freed holds nothing."""
    fleet = Fleet(interval=10.0, idle_holding_minutes=15)
    engine = fleet.engine(hold_s=0)
    for _ in range(90):
        fleet.sample(
            gpu(util_pct=0, mem_used_mib=31232, processes=[]), gpu(1, util_pct=0, mem_used_mib=3, processes=[]), step=10.0
        )
    alert = one(engine.evaluate(fleet.store), "idle-holding")
    assert alert.gpu == 0 and alert.severity is Severity.WARNING
    assert alert.evidence["processes"] == "none listed" and alert.evidence["memory held"] == "31,232 MiB"


def test_idle_holding_from_process_age_is_information_with_its_basis() -> None:
    fleet = Fleet(idle_holding_minutes=15)
    engine = fleet.engine(hold_s=0)
    fleet.sample(idle_gpu(started_at=T0 - 3 * HOUR))
    fleet.sample(idle_gpu(started_at=T0 - 3 * HOUR))
    alert = one(engine.evaluate(fleet.store), "idle-holding")
    assert alert.severity is Severity.INFO
    assert alert.since == T0 - 3 * HOUR
    assert alert.evidence["basis"] == "processes running 3.0h; idle in all 2 samples seen"


def test_no_idle_holding_when_a_sample_was_busy_or_the_process_is_young() -> None:
    fleet = Fleet(idle_holding_minutes=15)
    engine = fleet.engine(hold_s=0)
    fleet.sample(idle_gpu(started_at=T0 - 3 * HOUR, util=60))  # it computed while we looked
    fleet.sample(idle_gpu(started_at=T0 - 3 * HOUR))
    assert engine.evaluate(fleet.store) == []
    young = Fleet(idle_holding_minutes=15)
    young_engine = young.engine(hold_s=0)
    young.sample(idle_gpu(started_at=T0 - 300))
    young.sample(idle_gpu(started_at=T0 - 300))
    assert young_engine.evaluate(young.store) == []


def test_a_stale_host_alerts_and_keeps_its_gpu_alerts_as_last_seen() -> None:
    fleet = Fleet(alert_hold_s=0, alert_clear_s=0)
    engine = fleet.engine()
    fleet.sample(gpu(temp_c=86))
    assert found(engine.evaluate(fleet.store)) == {("thermal", 0)}
    fleet.wall.t += 10
    fleet.mono.t += 10  # three intervals without a frame and more
    alerts = engine.evaluate(fleet.store)
    assert found(alerts) == {("thermal", 0), ("stale", None)}
    assert one(alerts, "stale").title == "gpu-01: no data for 10s (stale)"
    fleet.store.mark_down(HOST, "cannot connect to 10.0.0.7: connection refused")
    alerts = engine.evaluate(fleet.store)
    assert found(alerts) == {("thermal", 0), ("down", None)}
    assert "connection refused" in one(alerts, "down").evidence["error"]


def test_alerts_come_worst_first() -> None:
    fleet = Fleet(gpus=3)
    engine = fleet.engine(hold_s=0)
    fleet.sample(gpu(0, persistence_mode=False), gpu(1, temp_c=86), {"index": 2, "lost": True})
    alerts = engine.evaluate(fleet.store)
    assert [a.severity for a in alerts] == [Severity.CRITICAL, Severity.WARNING, Severity.INFO]
    assert [a.rule for a in alerts] == ["lost", "thermal", "persistence"]


def test_affected_processes_and_the_markdown_report() -> None:
    fleet = Fleet(gpus=2)
    engine = fleet.engine(hold_s=0)
    fleet.sample(gpu(0, temp_c=91, throttle=["hw_thermal_slowdown"]), gpu(1))
    alerts = engine.evaluate(fleet.store)
    thermal = one(alerts, "thermal")
    assert [(i, p.pid) for i, p in affected_processes(fleet.store, thermal)] == [(0, 4242)]
    text = markdown_report(fleet.store, alerts, fleet.wall.t)
    assert "## Alerts" in text
    assert "| **critical** | gpu-01:0 | GPU 0 thermal slowdown at 91 C, 1 C from shutdown |" in text
    assert "throttle: thermal (HW)" in text
    assert "## gpu-01 (live)" in text
    assert "| GPU | PID | User | GPU memory | Started | Job | Command |" in text
    assert "| 0 | 4242 | alice | 19,500 MiB |" in text


# -- the simulated scenarios, end to end ----------------------------------------------------
async def demo_alerts(scenario: str, hosts: int = 1) -> list[Alert]:
    """The real demo hosts (agent sampler on simulated GPUs, in a child process), two samples each."""
    fleet = DemoFleet(hosts, None, scenario, seed=0, interval=1.0)
    store = FleetStore()
    engine = HealthEngine(Thresholds(), hold_s=0, clear_s=0)
    store.listeners.append(lambda: engine.observe(store))
    try:
        await collect(fleet.sources(), store, timeout=30.0, samples=2)
    finally:
        await fleet.close()
    assert all(r.sample is not None and r.sample.seq >= 1 for r in store.hosts.values())
    return engine.evaluate(store)


async def test_a_healthy_fleet_has_no_alerts() -> None:
    alerts = await demo_alerts("healthy", hosts=3)
    assert alerts == []


async def test_the_mixed_scenario_only_says_persistence_mode_is_off() -> None:
    alerts = await demo_alerts("mixed")
    assert found(alerts) == {("persistence", None)}
    assert alerts[0].severity is Severity.INFO
    assert alerts[0].evidence == {"GPUs": "0, 1, 2, 3"}


INCIDENT = {("thermal", 2), ("ecc", 3), ("remap", 3), ("xid", 3), ("lost", 5)}


async def test_the_incident_scenario_shows_its_planted_faults_and_nothing_else() -> None:
    alerts = await demo_alerts("incident")
    rules = found(alerts)
    optional = {("ecc", 3), ("idle-holding", 6)}  # corrected ECC may climb on GPU 3 between the samples
    assert INCIDENT <= rules <= INCIDENT | optional, rules
    assert one([a for a in alerts if a.gpu == 2], "thermal").evidence["throttle"] == "thermal (HW), thermal (SW)"
    lost = one(alerts, "lost")
    assert lost.gpu == 5 and lost.severity is Severity.CRITICAL
    assert lost.evidence["xid"].startswith("79 ")
    xid = one(alerts, "xid")
    assert (xid.gpu, xid.key, xid.severity) == (3, "xid:gpu-01:3:48", Severity.CRITICAL)
    assert "reset the GPU when idle" in xid.advice
    assert {a.severity for a in alerts if a.rule == "remap"} == {Severity.WARNING}
    assert alerts[0].severity is Severity.CRITICAL


async def test_the_incident_scenario_shows_the_gpu_held_while_idle() -> None:
    alerts = await demo_alerts("incident")
    idle = one(alerts, "idle-holding")
    assert idle.gpu == 6
    assert idle.evidence["util"] == "0%"


# Pauses among the hosts, among the alerts, and one before the alerts are sorted.
@pytest.mark.parametrize(("every", "alerts_per_step", "pauses"), [(10, 512, 150 // 64 + 1), (1, 32, 150 // 64 + 149 // 32 + 1)])
def test_the_dashboard_can_judge_a_large_fleet_in_slices_with_the_same_result(
    every: int, alerts_per_step: int, pauses: int
) -> None:
    """The app gives its event loop a turn between slices of hosts, and between slices of the
    alerts it makes (every host hot: at 4,096 hosts' 4,128 alerts, 25 to 40 ms made in one go);
    the alerts are the same as in one pass."""
    fleet = Fleet()
    board = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "temp_slowdown_c": 89, "temp_shutdown_c": 92}
    for n in range(1, 150):
        name = f"h{n:03d}"
        fleet.store.add_host(name)
        hot = gpu(temp_c=87 if n % every == 0 else 60)
        hello = {"type": "hello", "v": PROTOCOL_VERSION, "t": T0, "agent_version": "0.1", "host": name, "gpus": [board]}
        sample = {"type": "sample", "v": PROTOCOL_VERSION, "t": T0, "seq": 0, "gpus": [hot]}
        for frame in (hello, sample):
            parsed = parse_frame(json.dumps(frame))
            assert isinstance(parsed, Hello | Sample)
            fleet.store.apply(name, parsed)
    whole = fleet.engine(hold_s=0).evaluate(fleet.store)
    steps = fleet.engine(hold_s=0).evaluate_in_steps(fleet.store, hosts_per_step=64, alerts_per_step=alerts_per_step)
    sliced, paused = drive(steps)
    assert paused == pauses
    assert sliced == whole and len([a for a in whole if a.rule == "thermal"]) == 149 // every


def add_hosts(store: FleetStore, count: int, events: list[dict[str, Any]]) -> None:
    """``count`` one-GPU hosts, each with a hello and one sample carrying ``events``."""
    board = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "temp_slowdown_c": 89, "temp_shutdown_c": 92}
    for n in range(count):
        name = f"h{n:03d}"
        store.add_host(name)
        hello = {"type": "hello", "v": PROTOCOL_VERSION, "t": T0, "agent_version": "0.1", "host": name, "gpus": [board]}
        sample = {"type": "sample", "v": PROTOCOL_VERSION, "t": T0, "seq": 0, "gpus": [gpu()], "events": events}
        for frame in (hello, sample):
            parsed = parse_frame(json.dumps(frame))
            assert isinstance(parsed, Hello | Sample)
            store.apply(name, parsed)


def test_a_slice_of_a_pass_also_ends_once_it_has_taken_its_time() -> None:
    """The dashboard gives each slice of a pass a time budget besides its count of hosts: where
    hosts are slow to judge (a busy machine, hosts turning stale) a count alone let a slice hold
    the event loop twice as long as meant. With no time to spare every host, and every alert
    made, is a slice of its own, and the alerts are those of one pass."""
    fleet = Fleet()
    add_hosts(fleet.store, 20, [{"xid": 13, "gpu": 0, "t": T0 - 5, "source": "nvml"}])
    whole = fleet.engine(hold_s=0).evaluate(fleet.store)
    steps = fleet.engine(hold_s=0).evaluate_in_steps(fleet.store, hosts_per_step=1000, alerts_per_step=1000, slice_s=0.0)
    sliced, paused = drive(steps)
    assert len(whole) == 20 and sliced == whole
    assert paused == (len(fleet.store.hosts) - 1) + (len(whole) - 1) + 1  # between the hosts, between the alerts, then the sort


@pytest.mark.parametrize("paused_at", [2, 9])  # among the hosts; among the alerts being made
def test_a_replay_that_jumps_while_a_pass_is_paused_shows_nothing_from_before_the_jump(paused_at: int) -> None:
    """A replay that jumps clears the store, resets the engine and judges the new moment at once,
    while the dashboard's own pass may be paused halfway. That pass must not bring back what it
    found at the other moment: here an XID on every host, which the new moment does not have."""
    fleet = Fleet()
    add_hosts(fleet.store, 99, [{"xid": 13, "gpu": 0, "t": T0 - 5, "source": "nvml"}])
    engine = fleet.engine(hold_s=0)
    steps = engine.evaluate_in_steps(fleet.store, hosts_per_step=16, alerts_per_step=1)
    for _ in range(paused_at):  # 100 hosts: 6 pauses among them, then one per alert
        next(steps)
    fleet.store.clear_hosts()  # the jump, as the player makes it
    add_hosts(fleet.store, 99, [])
    engine.reset()
    assert engine.evaluate(fleet.store) == []
    assert finish(steps) == []  # the paused pass, let go on as the dashboard would
    assert engine.evaluate(fleet.store) == []


def finish(steps: Generator[None, None, list[Alert]]) -> list[Alert]:
    return drive(steps)[0]


def drive(steps: Generator[None, None, list[Alert]]) -> tuple[list[Alert], int]:
    """A paused pass run to its end, as the dashboard drives it: its alerts, and how often it paused."""
    paused = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, paused
        paused += 1


def test_counters_climb_through_a_stream_of_changes() -> None:
    """An agent sending changes (``--changes``) repeats no counter that did not move, and the
    decoder keeps it as the same object: the engine, which passes over a GPU whose counters it has
    read already, still sees the one rise that came in a delta."""
    fleet = Fleet(counter_window_minutes=5)
    engine = fleet.engine(hold_s=0, clear_s=0)
    decoder = FrameDecoder()

    def arrive(frame: dict[str, Any]) -> list[Alert]:
        fleet.wall.t += 1
        fleet.mono.t += 1
        fleet.store.apply(HOST, decoder.frame(json.dumps({"v": PROTOCOL_VERSION, "t": fleet.wall.t, **frame})))
        return engine.evaluate(fleet.store)

    assert arrive({"type": "sample", "seq": 0, "key": True, "gpus": [gpu(pcie_replays=37)]}) == []
    for seq in (1, 2, 3):
        assert arrive({"type": "delta", "seq": seq, "gpus": [{"index": 0, "util_pct": 70 + seq}]}) == []
    alerts = arrive({"type": "delta", "seq": 4, "gpus": [{"index": 0, "pcie_replays": 45}]})
    assert one(alerts, "pcie").title == "GPU 0 PCIe replays climbing (+8 in 5 min)"
    alerts = arrive({"type": "delta", "seq": 5, "gpus": [{"index": 0, "util_pct": 12}]})
    assert found(alerts) == {("pcie", 0)}  # the rise is still within the window
