"""The ``gputui`` command: the dashboard, the agent, the demo and snapshots.

Textual is imported only by the commands that draw a screen, so ``gputui
agent`` and ``gputui snapshot`` start fast and work where no UI can. ``gputui
agent`` is handed to the agent before anything else is imported: at module
level this file imports only what the agent imports anyway, so a one-shot
``gputui agent --once`` costs what ``python -m gputui.agent --once`` does
(tests/test_import_hygiene.py holds it to that).

Exit status: 2 for a usage or config error (3 for ``gputui check``, which
follows the Nagios convention: a usage error there is UNKNOWN, not CRITICAL).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import TYPE_CHECKING, cast

from gputui import __version__

if TYPE_CHECKING:  # imported where used: `gputui agent` needs none of them (pathlib alone costs a few ms)
    from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from pathlib import Path

    from gputui.cli_args import CommandParser, add_demo_args, add_prometheus_arg, positive_seconds_arg

    p = CommandParser(prog="gputui", description="Terminal dashboard for GPU cluster operations.")
    p.add_argument("--version", action="version", version=f"gputui {__version__}")
    p.add_argument("--config", type=Path, help="config file (default: $GPUTUI_CONFIG or ~/.config/gputui/config.toml)")
    p.add_argument(
        "--read-only",
        dest="ui_read_only",
        action="store_true",
        help="open the dashboard with every action refused, whatever the config allows",
    )
    add_prometheus_arg(p, "ui_prometheus")
    # Every command's parser is a CommandParser (argparse makes them of the parent's class); typed as
    # argparse's own for the modules that add commands.
    sub = cast("argparse._SubParsersAction[argparse.ArgumentParser]", p.add_subparsers(dest="command", metavar="COMMAND"))
    sub.add_parser("agent", help="run the agent on this host (see `gputui agent --help`)", add_help=False)
    demo = sub.add_parser("demo", help="open the dashboard on a simulated fleet")
    add_demo_args(demo, hosts=12)
    snap = sub.add_parser("snapshot", help="print the fleet's state once, without the UI")
    where = snap.add_mutually_exclusive_group()
    where.add_argument("--demo", action="store_true", help="a simulated fleet instead of the config's hosts")
    where.add_argument("--config", dest="snap_config", type=Path, help="config file with the hosts to ask")
    add_demo_args(snap, hosts=4)
    add_prometheus_arg(snap, "snap_prometheus")
    snap.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    snap.add_argument("--timeout", type=positive_seconds_arg, default=15.0, help="seconds to wait for every host (default 15)")
    check = sub.add_parser("check-config", help="validate the config and try every host once")
    check.add_argument("--config", dest="check_config", type=Path, help="config file (default as for gputui)")
    check.add_argument("--timeout", type=positive_seconds_arg, default=20.0, help="seconds to wait for the hosts (default 20)")
    from gputui.health import check_cli

    check = check_cli.add_parser(sub)
    add_demo_args(check, hosts=4)
    add_prometheus_arg(check, "check_prometheus")
    from gputui.actions.cli import add_parsers

    add_parsers(sub)
    from gputui.record import cli as record_cli

    record_cli.add_parsers(sub)
    sub.add_parser("example-config", help="print the example config, every key explained: gputui example-config > FILE")
    bundle = sub.add_parser("bundle", help="write the agent bundle (zip) that runs on a GPU host")
    bundle.add_argument("-o", "--output", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `gputui check | head`: the reader has gone. Say nothing more (a
        # second write would raise again at exit) and exit as a SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def parse(argv: list[str]) -> argparse.Namespace:
    """The arguments; a usage error exits with the status of the command it is in (see CommandParser)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "agent":  # `gputui agent ...` never gets here (see _main): options came before it
        parser.error("`agent` comes first (gputui agent --help): the agent takes none of the dashboard's options")
    if extra:  # said by the command's own parser, so that `gputui check --bogus` exits 3 as check's errors do
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            found: argparse.ArgumentParser = action.choices[command]
            return found
    return parser


def _main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["agent"]:
        from gputui.agent.main import main as agent_main

        return agent_main(args_list[1:])
    from pathlib import Path

    from gputui.protocol import ALL_ACTIONS

    args = parse(args_list)
    if args.command == "snapshot":
        return _snapshot(args)
    if args.command == "check":
        from gputui.health import check_cli

        return check_cli.run(args)
    if args.command == "check-config":
        return _check_config(args.check_config or args.config, args.timeout)
    if args.command == "record" or (args.command == "replay" and args.info):
        from gputui.record import cli as record_cli

        return record_cli.run(args)
    if args.command == "replay":
        from gputui.ui.launch import run_replay

        return run_replay(args.recording, args.speed, args.start)
    if args.command in (*ALL_ACTIONS, "audit"):
        from gputui.actions import cli as action_cli

        return action_cli.run(args, args.config)
    if args.command == "bundle":
        return _bundle(args.output)
    if args.command == "example-config":
        # Shipped as package data, so an installed gputui has it with no checkout at hand.
        sys.stdout.write((Path(__file__).parent / "config.example.toml").read_text(encoding="utf-8"))
        return 0
    if args.command == "demo":
        from gputui.ui.launch import run_demo

        return run_demo(args.hosts, args.gpus, args.scenario, args.seed, args.interval)
    from gputui.ui.launch import run_configured

    return run_configured(args.config, read_only=args.ui_read_only, prometheus_url=args.ui_prometheus)


def _check_config(path: Path | None, timeout: float) -> int:
    """``gputui check-config``: the report on stdout; a config that cannot be read is an error on stderr."""
    from gputui import check_config
    from gputui.config import default_path

    status, report = check_config.run(path or default_path(), timeout)
    if status == 2:
        print(f"gputui: {report}", file=sys.stderr)
    else:
        print(report)
    return status


def _bundle(output: Path) -> int:
    import hashlib

    from gputui.transport import bundle

    try:
        data = bundle.build()
        output.write_bytes(data)
        whole = hashlib.sha256(data).hexdigest()
    except OSError as exc:
        folder = output.parent
        if not folder.exists():
            why = f"the folder {folder} does not exist"
        elif not folder.is_dir():
            why = f"{folder} is not a folder"
        else:
            why = exc.strerror or str(exc)
        print(f"gputui: cannot write {output}: {why}", file=sys.stderr)
        return 2
    # The whole hash, as sha256sum prints it (the caches name the bundle by its first 16 digits).
    print(f"{output} sha256:{whole}")
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    import asyncio

    from gputui import snapshot
    from gputui.cli_args import demo_spec, prometheus_url
    from gputui.config import ConfigError
    from gputui.sources.fleet import open_fleet

    try:
        path = None if args.demo else args.snap_config or args.config  # `gputui --config F snapshot` too
        url = prometheus_url(args, args.snap_prometheus)
        fleet = open_fleet(path, demo_spec(args), url)
        if (nothing := fleet.nothing_to_read()) is not None:
            raise ValueError(nothing)
    except (ValueError, ConfigError) as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2

    # The markdown is the incident report: its alerts need the two looks `gputui check` takes
    # (counters that climb, XIDs from NVML, which come in the samples after the first).
    samples = 2 if args.format == "markdown" else 1

    async def look() -> None:
        await snapshot.collect(fleet.sources, fleet.store, args.timeout, samples, cluster=fleet.slurm)
        await fleet.close()

    asyncio.run(look())
    print(snapshot.render(fleet.store, args.format, None if args.demo else fleet.config.thresholds))
    return 0 if all(r.has_sample for r in fleet.store.hosts.values()) else 1
