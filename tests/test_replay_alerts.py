"""The health rules over a replay: an incident recorded live gives the same
alerts when it is played back, seeked into or opened from its end."""

from __future__ import annotations

from pathlib import Path

from gputui.health.engine import HealthEngine
from gputui.health.model import Alert
from gputui.record.player import ReplayPlayer
from gputui.record.reader import Recording
from tests.test_record import record_demo


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
