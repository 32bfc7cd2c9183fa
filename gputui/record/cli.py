"""``gputui record`` and ``gputui replay``: the command-line side of recordings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore
from gputui.record.player import SPEEDS
from gputui.record.writer import Written
from gputui.transport.base import Link

Closing = Callable[[], Awaitable[None]] | None


def add_parsers(sub: Any) -> None:
    """``record`` and ``replay`` on the ``gputui`` command's subparsers."""
    from gputui.cli import _add_demo_args, positive_seconds_arg

    rec = sub.add_parser("record", help="record every host's frames to a file, for `gputui replay`")
    where = rec.add_mutually_exclusive_group()
    where.add_argument("--demo", action="store_true", help="record a simulated fleet")
    where.add_argument("--config", dest="record_config", type=Path, help="config file with the hosts to record")
    _add_demo_args(rec, hosts=12)
    rec.add_argument("-o", "--output", type=Path, required=True, help="the recording to write (.gtrec); never overwritten")
    rec.add_argument("--duration", type=positive_seconds_arg, default=None, help="seconds to record (leave it out: until Ctrl-C)")
    rep = sub.add_parser("replay", help="open the dashboard on a recording (play, pause, speed, seek)")
    rep.add_argument("recording", type=Path)
    rep.add_argument("--speed", type=speed_arg, default=1.0, help=f"{SPEEDS[0]:g} to {SPEEDS[-1]:g} (default 1)")
    rep.add_argument("--start", default=None, help="where to start: 90, 5m, +1h2m (from the start), 12:03:41 (clock)")
    rep.add_argument("--info", action="store_true", help="print what the recording holds and what is damaged; no UI")


def speed_arg(text: str) -> float:
    """``replay --speed``: within the player's range, never clamped in silence."""
    from gputui.cli import number_arg

    value = number_arg(text)
    if not SPEEDS[0] <= value <= SPEEDS[-1]:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be between {SPEEDS[0]:g} and {SPEEDS[-1]:g}, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    if args.command == "record":
        return _record(args)
    if args.info:
        return _info(args.recording)
    from gputui.ui.launch import run_replay

    return run_replay(args.recording, args.speed, args.start)


def _sources(args: argparse.Namespace) -> tuple[list[Link], FleetStore, Closing, str]:
    """The links to record, as the dashboard would make them; ValueError or ConfigError says why not
    (a bad demo argument, a bad config, or no config and no --demo: never a simulated fleet unasked)."""
    from gputui import config as cfg
    from gputui.cli import config_needed

    store = FleetStore()
    config_path = args.record_config or args.config
    if args.demo:
        from gputui.transport.demo import DemoFleet

        fleet = DemoFleet(args.hosts, args.gpus, args.scenario, args.seed, args.interval)
        return list(fleet.links()), store, fleet.close, f"demo: {args.hosts} hosts ({args.scenario}, seed {args.seed})"
    from gputui.transport.from_config import links_for

    if config_path is None and not cfg.default_path().exists():
        raise ValueError(config_needed(cfg.default_path()))
    path = config_path or cfg.default_path()
    config = cfg.load(path)
    store.stale_after = config.thresholds.stale_after_intervals
    for h in config.hosts:
        store.add_host(h.name, tuple(h.tags), h.group)
    return links_for(config), store, None, f"gputui: {path.name}"


def _record(args: argparse.Namespace) -> int:
    from gputui.config import ConfigError

    exists = f"gputui: {args.output} exists: a recording is never overwritten; choose another name"
    if args.output.exists():  # said before connecting to anything; the file is still created exclusively
        print(exists, file=sys.stderr)
        return 2
    try:
        links, store, closing, title = _sources(args)
    except (ValueError, ConfigError) as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    try:
        info = asyncio.run(record_fleet(links, store, args.output, title, args.duration, closing))
    except FileExistsError:  # created by someone else since the check above
        print(exists, file=sys.stderr)
        return 2
    print(f"wrote {info.describe()}")
    return 0


async def record_fleet(
    links: Sequence[Link], store: FleetStore, path: Path, title: str, duration: float | None, closing: Closing = None
) -> Written:
    """Record until ``duration`` passes or SIGINT/SIGTERM; the file is closed whole either way."""
    from gputui.record.recorder import Recorder

    runner = FleetRunner(links, store)
    try:
        recorder = Recorder.start(runner, path, title, unique=False)  # a name the operator chose: never another
    except BaseException:
        if closing is not None:
            await closing()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    until = f"for {duration:g} s" if duration else "until Ctrl-C"
    print(f"recording {len(store.hosts)} hosts to {path} {until}", flush=True)
    runner.start()
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.stop()
        info = await recorder.close()
        if closing is not None:
            await closing()
    if recorder.error:
        print(f"gputui: {recorder.error}", file=sys.stderr)
    return info


def _info(path: Path) -> int:
    """What a recording holds, and what of it was lost; exit 1 when something was."""
    from gputui.record import format as fmt
    from gputui.record.format import RecordingError
    from gputui.record.reader import Recording

    try:
        rec = Recording.open(path)
    except RecordingError as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    frames = sum(c.count for c in rec.chunks)
    print(f"{path}: {rec.meta.get('title', '?')}")
    print(
        f"  {fmt.date_time(rec.started_at)} to {fmt.clock_time(rec.ended_at)} "
        f"({fmt.duration_text(rec.ended_at - rec.started_at)}), {len(rec.hosts)} hosts, "
        f"{frames} entries in {len(rec.chunks)} chunks, {len(rec.data) / 1e6:.2f} MB"
    )
    problems = rec.problems()
    for problem in problems:
        print(f"gputui: {problem}", file=sys.stderr)
    rec.close()
    return 1 if problems else 0
