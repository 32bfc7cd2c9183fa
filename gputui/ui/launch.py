"""Opening the dashboard: on the demo fleet, or on the configured hosts."""

from __future__ import annotations

import sys
from pathlib import Path

from gputui import config as cfg
from gputui.fleet.store import FleetStore
from gputui.transport.demo import DemoFleet
from gputui.transport.from_config import LinkFactory
from gputui.ui.app import GpuTuiApp


def demo_app(hosts: int, gpus: int | None, scenario: str, seed: int, interval: float) -> GpuTuiApp:
    fleet = DemoFleet(hosts, gpus, scenario, seed, interval)
    title = f"demo: {hosts} hosts ({scenario}, seed {seed})"
    return GpuTuiApp(FleetStore(), fleet.links(), title=title, on_exit=fleet.close, triage_first=True)


def run_demo(hosts: int, gpus: int | None, scenario: str, seed: int, interval: float) -> int:
    try:
        app = demo_app(hosts, gpus, scenario, seed, interval)
    except ValueError as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    app.run()
    return 0


def configured_app(path: Path, config: cfg.Config, read_only: bool = False) -> GpuTuiApp:
    """The dashboard on the hosts of ``config``, with its guarded actions."""
    store = FleetStore(stale_after=config.thresholds.stale_after_intervals)
    for h in config.hosts:
        store.add_host(h.name, tuple(h.tags), h.group)
    make = LinkFactory(config)
    return GpuTuiApp(
        store,
        [make(h) for h in config.hosts],
        title=f"gputui: {path.name}",
        theme=config.theme,
        config_path=path,
        link_factory=make,
        idle_holding_s=config.thresholds.idle_holding_minutes * 60,
        config=config,
        read_only=read_only,
        triage_first=True,
    )


def run_configured(path: Path | None, read_only: bool = False) -> int:
    """``read_only``: every action is refused (and audited), whatever the config allows."""
    path = path or cfg.default_path()
    if not path.exists():
        GpuTuiApp(welcome=(path, None)).run()
        return 0
    try:
        config = cfg.load(path)
    except cfg.ConfigError as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    configured_app(path, config, read_only).run()
    return 0


def replay_app(path: Path, speed: float = 1.0, start: str | None = None) -> GpuTuiApp:
    """The dashboard on a recording; RecordingError or ValueError say what is wrong with the file or ``start``."""
    from gputui.record.player import ReplayPlayer, parse_offset
    from gputui.record.reader import Recording

    recording = Recording.open(path)
    try:
        start_at = None if start is None else parse_offset(start, recording)
    except ValueError:
        recording.close()
        raise
    player = ReplayPlayer(recording, speed, start_at)

    async def close() -> None:
        recording.close()

    title = f"REPLAY {path.name}: {recording.meta.get('title', '')}"
    app = GpuTuiApp(player.store, [], title=title, on_exit=close, replay=player, wall_clock=player.now)
    player.on_rebuild.append(app.health_restart)  # after a jump, alerts are judged afresh at the new moment
    return app


def run_replay(path: Path, speed: float = 1.0, start: str | None = None) -> int:
    """``gputui replay``: what was lost is printed before the dashboard opens (and shown in it)."""
    from gputui.record.format import RecordingError

    try:
        app = replay_app(path, speed, start)
    except (RecordingError, ValueError) as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    assert app.tape.replay is not None
    for problem in app.tape.replay.problems:
        print(f"gputui: {problem}", file=sys.stderr)
    if not app.tape.replay.recording.chunks:
        print(f"gputui: {path}: nothing in it can be replayed", file=sys.stderr)
        return 1
    app.run()
    return 0
