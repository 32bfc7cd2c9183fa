"""``gputui record`` and ``gputui replay``: the command-line side of recordings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gputui.fleet.runner import FleetRunner
from gputui.health.words import plural
from gputui.record.player import SPEEDS
from gputui.record.writer import Written

if TYPE_CHECKING:
    from gputui.sources.fleet import Fleet


def add_parsers(sub: Any) -> None:
    """``record`` and ``replay`` on the ``gputui`` command's subparsers."""
    from gputui.cli_args import add_demo_args, positive_seconds_arg

    rec = sub.add_parser("record", help="record every host's frames to a file, for `gputui replay`")
    where = rec.add_mutually_exclusive_group()
    where.add_argument("--demo", action="store_true", help="record a simulated fleet")
    where.add_argument("--config", dest="record_config", type=Path, help="config file with the hosts to record")
    add_demo_args(rec, hosts=12)
    rec.add_argument("-o", "--output", type=Path, required=True, help="the recording to write (.gtrec); never overwritten")
    rec.add_argument("--duration", type=positive_seconds_arg, default=None, help="seconds to record (leave it out: until Ctrl-C)")
    rep = sub.add_parser("replay", help="open the dashboard on a recording (play, pause, speed, seek)")
    rep.add_argument("recording", type=Path)
    rep.add_argument("--speed", type=speed_arg, default=1.0, help=f"{SPEEDS[0]:g} to {SPEEDS[-1]:g} (default 1)")
    rep.add_argument("--start", default=None, help="where to start: 90, 5m, +1h2m (from the start), 12:03:41 (clock)")
    rep.add_argument("--info", action="store_true", help="print what the recording holds and what is damaged; no UI")


def speed_arg(text: str) -> float:
    """``replay --speed``: within the player's range, never clamped in silence."""
    from gputui.cli_args import number_arg

    value = number_arg(text)
    if not SPEEDS[0] <= value <= SPEEDS[-1]:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be between {SPEEDS[0]:g} and {SPEEDS[-1]:g}, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """``gputui record`` and ``gputui replay --info``; the dashboard's replay is gputui/ui/launch.py's."""
    if args.command == "record":
        return _record(args)
    return _info(args.recording)


def _record(args: argparse.Namespace) -> int:
    from gputui.config import ConfigError

    exists = f"gputui: {args.output} exists: a recording is never overwritten; choose another name"
    if args.output.exists():  # said before connecting to anything; the file is still created exclusively
        print(exists, file=sys.stderr)
        return 2
    folder = args.output.parent
    if not folder.is_dir():  # a typo in a path the operator gave makes no folders (ctrl+r's own folder is made)
        what = "is not a folder" if folder.exists() else "does not exist"
        print(f"gputui: cannot write {args.output}: {folder} {what}", file=sys.stderr)
        return 2
    from gputui.cli_args import demo_spec
    from gputui.sources.fleet import open_fleet

    try:  # as the dashboard would read them; never a simulated fleet unasked
        fleet = open_fleet(None if args.demo else args.record_config or args.config, demo_spec(args))
        if (nothing := fleet.nothing_to_read()) is not None:  # a recording of nothing, which replay would refuse
            raise ValueError(nothing)
    except (ValueError, ConfigError) as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    try:
        info = asyncio.run(record_fleet(fleet, args.output, args.duration))
    except FileExistsError:  # created by someone else since the check above
        print(exists, file=sys.stderr)
        return 2
    except OSError as exc:  # a folder it may not write in: nothing was recorded
        print(f"gputui: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {info.describe()}")
    return 0


async def record_fleet(fleet: Fleet, path: Path, duration: float | None) -> Written:
    """Record until ``duration`` passes or SIGINT/SIGTERM; the file is closed whole either way."""
    from gputui.record.recorder import Recorder

    store = fleet.store
    runner = FleetRunner(fleet.sources, store)
    try:
        recorder = Recorder.start(runner, path, fleet.title, unique=False)  # a name the operator chose: never another
    except BaseException:
        await fleet.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    until = f"for {duration:g} s" if duration else "until Ctrl-C"
    print(f"recording {plural(len(store.hosts), 'host')} to {path} {until}", flush=True)
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
        await fleet.close()
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
        f"({fmt.duration_text(rec.ended_at - rec.started_at)}), {plural(len(rec.hosts), 'host')}, "
        f"{plural(frames, 'entry')} in {plural(len(rec.chunks), 'chunk')}, {len(rec.data) / 1e6:.2f} MB"
    )
    problems = rec.problems()
    for problem in problems:
        print(f"gputui: {problem}", file=sys.stderr)
    rec.close()
    return 1 if problems else 0
