"""The rules' fast path for a healthy GPU (``calm``) and host (``HostCalm``) never hides a finding.

A GPU called calm skips the per-GPU rules but the idle-holding one, and so
does every GPU of a host called all calm, so if either were ever wrong an
operator would miss a hot, throttled, full or failing GPU. Here each is
checked against the rules themselves over GPUs made at and around every
threshold (temperatures a degree either side of each limit, memory a tenth
of a point either side, each clock-event reason, every error flag), with
thresholds that vary too.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from gputui.agent.changes import ChangeEncoder
from gputui.config import Thresholds
from gputui.fleet.store import FleetStore
from gputui.frame_columns import columns_of
from gputui.frame_decoder import FrameDecoder
from gputui.frames import GpuSample, GpuStatic
from gputui.health import rules
from gputui.health.calm import HostCalm, calm, calm_at, full_at_mib, hottest_calm_c
from gputui.health.engine import HealthEngine
from gputui.sources.demo_feed import host_names, make_sampler
from tests.health_data import T0, Clock, gpu

REASONS = ["sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake", "hw_slowdown", "sw_power_cap", "gpu_idle"]


def around(rng: random.Random, edge: float, spread: float) -> float:
    """A value at, just either side of, or well away from ``edge``."""
    return edge + rng.choice([-spread, -0.1, 0.0, 0.1, spread, rng.uniform(-3 * spread, 3 * spread)])


def a_gpu(rng: random.Random, th: Thresholds) -> tuple[GpuSample, GpuStatic | None]:
    slowdown = rng.choice([None, 87, 90])
    shutdown = rng.choice([None, 92, 95])
    temp_edge = rng.choice([e for e in (slowdown and slowdown - th.temp_margin_c, shutdown and shutdown - 2, 70) if e])
    total = rng.choice([None, 0, 81559, 40960])
    used: int | None = None
    if total:
        used = max(0, min(total, round(total * around(rng, th.mem_used_pct - th.mem_hysteresis_pct, 5.0) / 100)))
    choices: dict[str, Any] = {
        "util_pct": rng.choice([None, 0, 5, 6, 50, 100]),
        "temp_c": None if rng.random() < 0.1 else round(around(rng, temp_edge, 3.0)),
        "mem_total_mib": total,
        "mem_used_mib": used,
        "throttle": rng.choice([None, [], [rng.choice(REASONS)], rng.sample(REASONS, 2)]),
        "lost": True,
        "field_errors": {"temp_c": "Unknown Error"},
        "ecc": rng.choice([None, {"volatile_uncorrected": 0}, {"volatile_uncorrected": 1}, {"aggregate_uncorrected": 3}]),
        "remapped_rows": rng.choice([None, {"pending": False, "failure": False}, {"pending": True}, {"failure": True}]),
        "retired_pages": rng.choice([None, {"pending": False}, {"pending": True}]),
    }
    # Each value off the healthy GPU's now and then, so that GPUs with one thing near or past a
    # limit (the cases that matter) are common, and so are wholly healthy ones.
    values = {key: value for key, value in choices.items() if rng.random() < 0.2}
    if "mem_total_mib" in values:
        values["mem_used_mib"] = used
    sample = GpuSample.model_validate(gpu(0, **values))
    if rng.random() < 0.15:
        return sample, None
    static = GpuStatic(index=0, temp_slowdown_c=slowdown, temp_shutdown_c=shutdown, lost=rng.random() < 0.05)
    return sample, static


def rules_say(g: GpuSample, static: GpuStatic | None, th: Thresholds) -> list[str]:
    """What every per-GPU rule but the idle-holding one finds, by name (the slow path, rule by rule)."""
    if g.lost or (static is not None and static.lost):
        return ["lost"]
    found = [
        rules.thermal(g, static, th),
        rules.slowdown(g),
        rules.memory(g, th),
        rules.remap(g),
        rules.retired(g),
        rules.uncorrected_ecc(g),
        rules.field_errors(g),
    ]
    return [f.rule for f in found if f is not None]


def test_a_gpu_called_calm_is_one_no_rule_would_report() -> None:
    rng = random.Random(16)
    called_calm = spoken = 0
    for _ in range(20_000):
        th = Thresholds(
            temp_margin_c=rng.choice([0, 5, 10]),
            temp_hysteresis_c=rng.choice([0.0, 2.0, 4.5]),
            mem_used_pct=rng.choice([80.0, 95.0, 100.0]),
            mem_hysteresis_pct=rng.choice([0.0, 3.0, 10.0]),
        )
        g, static = a_gpu(rng, th)
        said = rules_say(g, static, th)
        if calm(g, static, th):
            called_calm += 1
            assert said == [], (g, static, th, said)
        spoken += bool(said)
    # Both kinds were made plenty of times: the check above saw calm GPUs, and GPUs the rules report.
    assert called_calm > 2_000 and spoken > 5_000, (called_calm, spoken)


def test_a_healthy_gpu_is_calm_and_one_degree_hotter_is_not() -> None:
    th = Thresholds()  # 5 C margin and 2 C of hysteresis below a slowdown point at 87 C
    static = GpuStatic(index=0, temp_slowdown_c=87, temp_shutdown_c=92)
    cool = GpuSample.model_validate(gpu(0, temp_c=79))
    warm = GpuSample.model_validate(gpu(0, temp_c=80))
    assert calm(cool, static, th)
    assert not calm(warm, static, th)
    assert rules.thermal(warm, static, th) is not None  # within the band: it keeps an alert on


def some_thresholds(rng: random.Random) -> Thresholds:
    return Thresholds(
        temp_margin_c=rng.choice([0, 5, 10]),
        temp_hysteresis_c=rng.choice([0.0, 2.0, 4.5, 2.1]),
        mem_used_pct=rng.choice([80.0, 95.0, 100.0, 33.3]),
        mem_hysteresis_pct=rng.choice([0.0, 3.0, 10.0, 0.7]),
    )


def test_a_host_called_all_calm_has_no_gpu_a_rule_would_report() -> None:
    """Hosts of one to eight GPUs, each made as above, with their own limits: where ``HostCalm``
    says all calm, every GPU is calm and no rule but the idle-holding one speaks; and it says so of
    every host whose GPUs are all calm, but where one is above another's lower limit or does not
    say its memory in use (a fast path that is taken). Asked again of the same columns (its kept
    answer), it answers the same. Each GPU's ``calm_at`` (from the host's columns, for a host not
    all calm) says what ``calm`` says of it."""
    rng = random.Random(17)
    said_calm = calm_hosts = 0
    for _ in range(6_000):
        th = some_thresholds(rng)
        made = [a_gpu(rng, th) for _ in range(rng.choice([1, 2, 3, 8]))]
        gpus = [GpuSample.model_validate({**g.model_dump(), "index": i}) for i, (g, _) in enumerate(made)]
        statics = {i: s.model_copy(update={"index": i}) for i, (_, s) in enumerate(made) if s is not None}
        host = HostCalm()
        columns = columns_of(gpus)
        verdict = host.all_calm(columns, statics, th)
        assert host.all_calm(columns, statics, th) == verdict
        each = [calm(g, statics.get(g.index), th) for g in gpus]
        assert each == [calm_at(columns, place, statics.get(g.index), th) for place, g in enumerate(gpus)]  # by column, the same
        if verdict:
            said_calm += 1
            assert all(each), (gpus, statics, th)
            assert all(rules_say(g, statics.get(g.index), th) == [] for g in gpus)
        # Where it may say no though each GPU is calm: a GPU above another's lower limit, or one
        # whose memory in use is not known. Anywhere else it says what the GPUs say.
        hottest = hottest_calm_c(statics, th)
        within = hottest is not None and all(g.temp_c is None or g.temp_c <= hottest for g in gpus)
        if within and all(g.mem_used_mib is not None for g in gpus):
            calm_hosts += all(each)
            assert verdict == all(each), (gpus, statics, th)
    assert said_calm > 200 and calm_hosts > 200, (said_calm, calm_hosts)


def test_the_host_bounds_agree_with_calm_at_every_whole_value() -> None:
    """The two bounds ``HostCalm`` compares against (the hottest calm temperature, the memory in use
    at which a GPU is full) say what ``calm`` says, degree by degree and MiB by MiB around them."""
    rng = random.Random(18)
    for _ in range(400):
        th = some_thresholds(rng)
        static = GpuStatic(index=0, temp_slowdown_c=rng.choice([None, 83, 87, 90]), temp_shutdown_c=rng.choice([None, 92, 95]))
        hottest = hottest_calm_c({0: static}, th)
        assert hottest is not None
        for temp in range(40, 100):
            g = GpuSample.model_validate(gpu(0, temp_c=temp, mem_used_mib=0))
            assert calm(g, static, th) == (temp <= hottest), (temp, hottest, static, th)
        total = rng.choice([1, 3, 7, 1000, 40960, 81559])
        full_at = full_at_mib(total, th)
        for used in {*range(0, min(total, 5) + 1), *range(max(0, int(full_at) - 3), min(total, int(full_at) + 3) + 1)}:
            g = GpuSample.model_validate(gpu(0, temp_c=40, mem_used_mib=used, mem_total_mib=total))
            assert calm(g, None, th) == (used < full_at), (used, total, full_at, th)
    assert hottest_calm_c({0: GpuStatic(index=0, lost=True)}, Thresholds()) is None


def test_the_engine_alerts_the_same_with_and_without_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A demo fleet (healthy, mixed and incident hosts: idle GPUs holding memory, hot and throttled
    ones, ECC errors, XIDs) judged for 30 s by two engines, one of which judges every GPU with every
    rule: the alerts, titles and evidence included, are the same each second. The hosts send changes,
    as the demo's do, so the fast engine sees GPUs made only when it reads them (gputui/frame_later.py)."""
    names = host_names(48)
    samplers = [make_sampler("fleet", 0, 8, i, name) for i, name in enumerate(names)]
    encoders, decoders = [ChangeEncoder(30) for _ in names], [FrameDecoder() for _ in names]
    mono, wall = Clock(1000.0), Clock(T0)
    store = FleetStore(clock=mono)
    for name, sampler, encoder, decoder in zip(names, samplers, encoders, decoders, strict=True):
        store.add_host(name)
        store.apply(name, decoder.frame_later(json.dumps(encoder.hello(sampler.hello(1.0)))))
    th = Thresholds(idle_holding_minutes=0.25)  # idle GPUs turn idle-holding within the run
    fast, every_rule = HealthEngine(th, clock=wall), HealthEngine(th, clock=wall)
    all_calm = HostCalm.all_calm
    seen: set[str] = set()
    hosts_calm = [0]

    def counted(host: HostCalm, *args: Any) -> bool:
        verdict = all_calm(host, *args)
        hosts_calm[0] += verdict
        return verdict

    for _ in range(30):
        mono.t += 1.0
        wall.t += 1.0
        for name, sampler, encoder, decoder in zip(names, samplers, encoders, decoders, strict=True):
            store.apply(name, decoder.frame_later(json.dumps(encoder.encode(sampler.sample()))), decoder.columns)
        monkeypatch.setattr(rules, "calm", calm)
        monkeypatch.setattr(rules, "calm_at", calm_at)
        monkeypatch.setattr(HostCalm, "all_calm", counted)
        alerts = fast.evaluate(store)
        monkeypatch.setattr(rules, "calm", lambda *_: False)
        monkeypatch.setattr(rules, "calm_at", lambda *_: False)
        monkeypatch.setattr(HostCalm, "all_calm", lambda *_: False)
        assert every_rule.evaluate(store) == alerts
        seen |= {a.rule for a in alerts}
    assert {"thermal", "idle-holding", "ecc", "lost", "remap"} <= seen, seen
    assert hosts_calm[0] > 30 * 48 // 2, hosts_calm  # most hosts, most seconds, took the host's fast path
