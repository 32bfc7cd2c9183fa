"""The health rules over a replay: an incident recorded live gives the same
alerts when it is played back, seeked into or opened from its end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gputui.config import Thresholds
from gputui.health.engine import HealthEngine
from gputui.health.model import Alert
from gputui.protocol import PROTOCOL_VERSION
from gputui.record.player import ReplayPlayer
from gputui.record.reader import Recording
from gputui.record.writer import ChunkBuilder, RecordingFile
from tests.health_data import HOST, T0, gpu
from tests.recordings import record_demo


def judged(alerts: list[Alert]) -> set[tuple[str, str, str]]:
    return {(a.key, a.severity.word, a.title) for a in alerts}


async def test_a_replay_gives_the_alerts_the_live_fleet_gave(tmp_path: Path) -> None:
    path = tmp_path / "incident.gtrec"
    # Short chunks, so that the end of the recording is several keyframes after its start.
    live, seen = await record_demo(path, samples=15, hosts=2, chunk_seconds=0.3, scenario="incident", gpus=8)
    end = max(t for _, t, _ in seen.lines)
    live_alerts = HealthEngine(hold_s=0, clock=lambda: end).evaluate(live)
    rules = {a.rule for a in live_alerts}
    assert {"lost", "xid", "thermal", "ecc", "remap"} <= rules, rules

    recording = Recording.open(path)
    assert len(recording.chunks) > 2
    player = ReplayPlayer(recording)
    player.seek(recording.ended_at)
    # A step back rebuilds the fleet from the last chunk's keyframe, long after the first XIDs came.
    player.seek(recording.ended_at - 0.01)
    player.seek(recording.ended_at)
    replayed = HealthEngine(hold_s=0, clock=player.now).evaluate(player.store)
    assert judged(replayed) == judged(live_alerts)
    for name, record in live.hosts.items():
        assert list(player.store.hosts[name].events) == list(record.events), "the XIDs seen before the last keyframe"


def write_recording(path: Path, seconds: int, every: int, sample: Callable[[int], dict[str, Any]]) -> Recording:
    """One host's hello and a sample every ``every`` s, through the recorder's own chunk builder and writer."""
    builder = ChunkBuilder(20.0)
    builder.add_host(HOST)
    out = RecordingFile(path, "t", builder.hosts)

    def put(t: float, frame: dict[str, Any]) -> None:
        if builder.due(t) and (chunk := builder.cut()) is not None:
            out.write(chunk)
        builder.frame(HOST, t, json.dumps(frame).encode())

    board = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "temp_slowdown_c": 89, "temp_shutdown_c": 92}
    hello = {"type": "hello", "v": PROTOCOL_VERSION, "t": T0, "agent_version": "0.1", "host": HOST, "gpus": [board]}
    put(T0, dict(hello, interval_s=float(every)))
    for s in range(1, seconds + 1, every):
        put(T0 + s, {"type": "sample", "v": PROTOCOL_VERSION, "t": T0 + s, "seq": s, **sample(s)})
    chunk = builder.cut()
    assert chunk is not None
    out.write(chunk)
    out.close()
    return Recording.open(path)


def judged_player(recording: Recording) -> tuple[ReplayPlayer, HealthEngine]:
    """A player and an engine on its clock, started afresh after every jump (as the dashboard does)."""
    player = ReplayPlayer(recording)
    engine = HealthEngine(Thresholds(), clock=player.now)
    player.on_rebuild.append(engine.reset)
    return player, engine


def test_seeking_back_before_an_xid_shows_no_alert_for_it(tmp_path: Path) -> None:
    def sample(s: int) -> dict[str, Any]:
        events = [{"xid": 95, "gpu": 0, "t": T0 + s, "source": "nvml"}] if s == 200 else []
        return {"gpus": [gpu()], "events": events}

    player, engine = judged_player(write_recording(tmp_path / "xid.gtrec", 300, 1, sample))
    player.seek(T0 + 250)
    assert [a.key for a in engine.evaluate(player.store) if a.rule == "xid"] == [f"xid:{HOST}:0:95"]
    player.seek(T0 + 30)  # before it happened
    assert [a for a in engine.evaluate(player.store) if a.rule == "xid"] == []


def test_a_jump_forward_does_not_make_an_old_counter_rise_look_new(tmp_path: Path) -> None:
    recording = write_recording(tmp_path / "pcie.gtrec", 3600, 5, lambda s: {"gpus": [gpu(pcie_replays=2 if s < 300 else 7)]})
    player, engine = judged_player(recording)
    player.seek(T0 + 60)
    engine.evaluate(player.store)
    player.seek(T0 + 3000)  # the rise was at +5 min, 45 min before: outside the 10 min window
    for _ in range(4):
        player.seek(player.now() + 5)  # playing on a little
        assert [a for a in engine.evaluate(player.store) if a.rule == "pcie"] == []
