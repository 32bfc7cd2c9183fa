"""nvidia-smi's CSV turned into frames: rounds, gaps and error lines; and
what the health rules make of a host read that way (thermal limits from
T.Limit, the config or the model's default; throttle reasons)."""

from __future__ import annotations

import json

import pytest

from gputui.config import Thresholds
from gputui.fleet.store import FleetStore
from gputui.frames import Hello, Sample, parse_frame
from gputui.health.engine import HealthEngine
from gputui.health.model import Alert, Severity
from gputui.sim.nvidia_smi import gpu_row, main
from gputui.sim.nvml import SimNvml
from gputui.transport.smi_fallback import (
    GPU_FIELDS,
    OTHER_NAMES,
    REASONS,
    TLIMIT,
    SmiRounds,
    parse_gpu_line,
    query_fields,
    refuse,
    throttle_reasons,
    value,
)

HOST = "smi-host"


def rows(sim: SimNvml, refused: set[str] | None = None) -> list[dict[str, str | None]]:
    """One round as the fallback reads it, asking for what it would ask an
    nvidia-smi that refused ``refused`` (None: the plain fields only)."""
    if refused is None:
        asked, keys = list(GPU_FIELDS), list(GPU_FIELDS)
    else:
        asked, keys, _ = query_fields(refused)
    return [parse_gpu_line(gpu_row(sim, i, asked), keys) for i in range(len(sim.gpus))]


def judged(sim: SimNvml, refused: set[str], slowdown_c: int | None = None, rounds: int = 2) -> tuple[Hello, Sample, list[Alert]]:
    """The host's frames through the store and the health engine, as the dashboard judges them."""
    _, _, missing = query_fields(refused)
    smi = SmiRounds(HOST, 1.0, slowdown_c, missing)
    store = FleetStore()
    store.add_host(HOST)
    for _ in range(rounds):
        sim.advance(1)
        for row in rows(sim, refused):
            for frame in smi.add(row):
                parsed = parse_frame(json.dumps(frame))
                assert isinstance(parsed, Hello | Sample)
                store.apply(HOST, parsed)
    record = store.hosts[HOST]
    assert record.hello is not None and record.sample is not None, record.error
    alerts = HealthEngine(Thresholds(), hold_s=0).evaluate(store)
    return record.hello, record.sample, alerts


def thermal(alerts: list[Alert]) -> dict[int | None, Alert]:
    return {a.gpu: a for a in alerts if a.rule == "thermal"}


def test_a_round_is_sent_as_soon_as_it_is_complete() -> None:
    sim = SimNvml("healthy", gpus=4, processes="synthetic", clock=lambda: 0.0)
    rounds = SmiRounds("h", 1.0)
    frames = []
    for row in rows(sim):
        frames += rounds.add(row)
    assert frames == []  # the first round's size is not known until the index goes back
    first_of_next = rows(sim)
    frames += rounds.add(first_of_next[0])
    kinds = [f["type"] for f in frames]
    assert kinds == ["hello", "sample"]
    for row in first_of_next[1:]:
        frames += rounds.add(row)
    assert [f["type"] for f in frames] == ["hello", "sample", "sample"]  # no waiting for round three
    hello, sample = parse_frame(json.dumps(frames[0])), parse_frame(json.dumps(frames[2]))
    assert isinstance(hello, Hello) and len(hello.gpus) == 4
    assert isinstance(sample, Sample) and [g.index for g in sample.gpus] == [0, 1, 2, 3]
    assert all(g.throttle is None and g.remapped_rows is None for g in sample.gpus)  # not asked for: unknown, not "none"


def test_not_available_spellings_are_null() -> None:
    for text in ("[N/A]", "[Not Supported]", " N/A", "", "[Unknown Error]"):
        assert value(text) is None
    assert value(" 42 ") == "42"


def test_a_missing_gpu_0_does_not_grow_a_round_for_ever() -> None:
    sim = SimNvml("healthy", gpus=3, processes="synthetic", clock=lambda: 0.0)
    rounds = SmiRounds("h", 1.0)
    frames = []
    for _ in range(3):
        for row in rows(sim)[1:]:  # GPU 0 errors out every round
            frames += rounds.add(row)
    samples = [f for f in frames if f["type"] == "sample"]
    assert len(samples) == 3 and all(len(f["gpus"]) == 2 for f in samples)  # type: ignore[arg-type]


def test_a_gpu_at_92_c_read_through_nvidia_smi_raises_the_thermal_alert() -> None:
    sim = SimNvml("incident", processes="synthetic", clock=lambda: 0.0)  # GPU 2 runs past its 89 C slowdown
    hello, sample, alerts = judged(sim, set())
    static, hot = hello.gpus[2], sample.gpus[2]
    assert hot.temp_c is not None and hot.temp_c >= 89
    assert static.temp_slowdown_c == 89 and static.temp_limits_from == "nvidia-smi T.Limit"  # 92 C and T.Limit -3
    assert hot.throttle == ["hw_thermal_slowdown", "sw_thermal_slowdown"] and hot.mem_temp_c is not None
    alert = thermal(alerts)[2]
    assert alert.severity in (Severity.WARNING, Severity.CRITICAL)
    assert "thermal slowdown" in alert.title and alert.evidence["limits from"] == "nvidia-smi T.Limit"
    assert set(thermal(alerts)) == {2}  # the cool GPUs stay quiet
    assert hello.missing_fields == []


def test_an_nvidia_smi_without_tlimit_still_alerts_from_the_models_default() -> None:
    sim = SimNvml("incident", processes="synthetic", clock=lambda: 0.0)
    hello, _, alerts = judged(sim, {TLIMIT})
    assert hello.missing_fields == [TLIMIT]
    assert (hello.gpus[2].temp_slowdown_c, hello.gpus[2].temp_shutdown_c) == (89, 92)
    assert hello.gpus[2].temp_limits_from == "H100 default"
    alert = thermal(alerts)[2]
    assert alert.evidence["slowdown at"] == "89 C" and alert.evidence["limits from"] == "H100 default"
    assert set(thermal(alerts)) == {2}


def test_a_configured_slowdown_point_stands_in_where_t_limit_is_not_given() -> None:
    # The mixed scenario's A100 40GB boards print [N/A] for T.Limit; its A100 80GB gives one.
    sim = SimNvml("mixed", processes="synthetic", clock=lambda: 0.0)
    hello, sample, alerts = judged(sim, set(), slowdown_c=40)
    sources = [g.temp_limits_from for g in hello.gpus]
    assert sources == ["config", "config", "config", "nvidia-smi T.Limit"]
    assert [g.temp_slowdown_c for g in hello.gpus[:3]] == [40, 40, 40]
    warm = {g.index for g in sample.gpus[:3] if g.temp_c is not None and g.temp_c >= 40 - Thresholds().temp_margin_c}
    assert warm and warm <= set(thermal(alerts))  # above the configured point: alerted
    assert 3 not in thermal(alerts)  # its own T.Limit says it is far from slowing down
    hello, _, _ = judged(SimNvml("mixed", processes="synthetic", clock=lambda: 0.0), set())
    assert [g.temp_limits_from for g in hello.gpus] == ["A100 default"] * 3 + ["nvidia-smi T.Limit"]


def test_throttle_reasons_from_nvidia_smi_are_the_throttle_rules_findings() -> None:
    # A line as nvidia-smi prints it for a GPU whose node pulled the power brake (0x80) with HW slowdown (0x08).
    asked, keys, _ = query_fields(set())
    line = (
        "0, GPU-3f1a2b4c-0000-1111-2222-333344445555, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 550.127.08, 81559, "
        "40211, 97, 51, 61, 288.40, 700.00, 1155, 2619, [N/A], P0, Default, 0, 28, 64, 0x0000000000000088"
    )
    assert len(line.split(",")) == len(asked)
    smi = SmiRounds(HOST, 1.0)
    store = FleetStore()
    store.add_host(HOST)
    for _ in range(2):
        for frame in smi.add(parse_gpu_line(line, keys)):
            parsed = parse_frame(json.dumps(frame))
            assert isinstance(parsed, Hello | Sample)
            store.apply(HOST, parsed)
    sample = store.hosts[HOST].sample
    assert sample is not None and sample.gpus[0].throttle == ["hw_power_brake", "hw_slowdown"]
    alerts = [a for a in HealthEngine(Thresholds(), hold_s=0).evaluate(store) if a.rule == "throttle"]
    assert [a.title for a in alerts] == ["GPU 0 slowed by the power brake"]
    assert "power brake" in alerts[0].evidence["throttle"]


def test_the_reason_mask_and_its_absence() -> None:
    assert throttle_reasons("0x0000000000000000") == []
    assert throttle_reasons("0x0000000000000001") == []  # idle is not a slowdown
    assert throttle_reasons("0x0000000000000064") == ["hw_thermal_slowdown", "sw_power_cap", "sw_thermal_slowdown"]
    assert throttle_reasons(None) is None and throttle_reasons("garbage") is None


def test_the_stand_in_refuses_a_field_it_predates_as_nvidia_smi_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUTUI_SIM_SMI_UNKNOWN", TLIMIT)
    assert main([f"--query-gpu=index,{TLIMIT}", "--format=csv,noheader,nounits"]) == 2
    assert capsys.readouterr().out == f'Field "{TLIMIT}" is not a valid field to query.\n\n'
    assert main(["--query-gpu=index,no.such.field", "--format=csv,noheader,nounits"]) == 2


def test_a_refused_field_is_dropped_or_asked_for_by_its_other_name() -> None:
    refused: set[str] = set()
    assert refuse(refused, f'Field "{TLIMIT}" is not a valid field to query.')
    asked, keys, missing = query_fields(refused)
    assert TLIMIT not in asked and missing == [TLIMIT] and len(asked) == len(keys)
    assert refuse(refused, f'Field "{REASONS}" is not a valid field to query.')
    asked, keys, missing = query_fields(refused)
    assert OTHER_NAMES[REASONS] in asked and REASONS in keys and missing == [TLIMIT]  # same rows, new name
    # Words not understood: every optional field goes, once; then nothing is left to drop.
    assert refuse(refused, "Field “index” is not a valid field to query.")
    assert query_fields(refused)[0] == list(GPU_FIELDS)
    assert not refuse(refused, 'Field "index" is not a valid field to query.')
