"""Opening the dashboard: on the demo fleet, or on the configured hosts.

The dashboard draws on a terminal and reads its keys from one: with stdin or
stdout redirected it would write escape codes into a file and wait for keys
that never come, so it refuses to start there (exit 2) and names the
commands that print instead. It also sets up the process's heap for a
dashboard of thousands of hosts (gputui/ui/heap.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from textual.markup import escape

from gputui import config as cfg
from gputui.sources import fleet as fleets
from gputui.ui.app import GpuTuiApp
from gputui.ui.heap import HeapSettler, tune_gc
from gputui.ui.themes import unknown_theme


def demo_app(hosts: int, gpus: int | None, scenario: str, seed: int, interval: float) -> GpuTuiApp:
    fleet = fleets.demo(fleets.DemoSpec(hosts, gpus, scenario, seed, interval))
    return GpuTuiApp(fleet.store, fleet.sources, title=fleet.title, on_exit=fleet.close, triage_first=True)


def run_demo(hosts: int, gpus: int | None, scenario: str, seed: int, interval: float) -> int:
    try:
        app = demo_app(hosts, gpus, scenario, seed, interval)
    except ValueError as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    return run_app(app)


def no_terminal() -> str | None:
    """Why the dashboard cannot run here, or None when stdin, stdout and stderr are all a terminal.

    Textual reads keys from stdin and draws on stderr; stdout is asked for too, since with it redirected
    the operator wanted text (`gputui snapshot`), not a screen.
    """
    streams: list[tuple[str, TextIO | None]] = [("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr)]
    missing = [name for name, stream in streams if stream is None or stream.closed or not stream.isatty()]
    if not missing:
        return None
    which = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
    return (
        f"gputui: the dashboard needs a terminal, but {which} {'is' if len(missing) == 1 else 'are'} not one; "
        "to print the fleet instead use `gputui snapshot` (every host once) or `gputui check` (the alerts)"
    )


def tune_heap(app: GpuTuiApp) -> None:
    """The collector as the dashboard runs it: its thresholds now, the heap frozen once the fleet
    settles, freed memory given back on a clock (gputui/ui/heap.py)."""
    tune_gc()
    app.heap = HeapSettler(app.store)


def run_app(app: GpuTuiApp) -> int:
    """Run the dashboard until it quits; 2, with the reason on stderr, where there is no terminal to run on."""
    problem = no_terminal()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    tune_heap(app)
    app.run()
    return 0


def configured_app(path: Path | None, config: cfg.Config, read_only: bool = False) -> GpuTuiApp:
    """The dashboard on the hosts of ``config``, with its guarded actions; ``path`` None: a config
    made from the command line (``--prometheus URL``), to which no host can be added."""
    fleet = fleets.from_config(config, path)
    app = GpuTuiApp(
        fleet.store,
        fleet.sources,
        title=fleet.title,
        theme=config.theme,
        config_path=path,
        source_factory=fleet.source_for if path is not None else None,
        on_exit=fleet.close,
        idle_holding_s=config.thresholds.idle_holding_minutes * 60,
        config=config,
        read_only=read_only,
        triage_first=True,
    )
    if fleet.followers:
        app.follow_new = fleet.follow_new
    app.source_problems = fleet.problems
    if fleet.slurm is not None:
        app.follow_cluster = fleet.slurm.follow
    problem = unknown_theme(config.theme, app.available_themes)
    if problem is not None:  # shown once, as a notification, with the theme files' own problems
        app.theme_problems.append(escape(f"{path or 'config'}: {problem}; showing {app.theme}"))
    return app


def run_configured(path: Path | None, read_only: bool = False, prometheus_url: str | None = None) -> int:
    """``read_only``: every action is refused (and audited), whatever the config allows.
    ``prometheus_url``: read the fleet from that Prometheus (with the config's settings, if there is one)."""
    path = path or cfg.default_path()
    if not path.exists() and prometheus_url is None:
        return run_app(GpuTuiApp(welcome=(path, None)))
    try:
        config = cfg.load(path) if path.exists() else cfg.Config()
        if prometheus_url is not None:
            config = fleets.with_prometheus(config, prometheus_url)
        app = configured_app(path if path.exists() else None, config, read_only)
    except (cfg.ConfigError, ValueError) as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    return run_app(app)


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
    return run_app(app)
