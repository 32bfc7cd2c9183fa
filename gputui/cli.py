"""The ``gputui`` command: the dashboard, the agent, the demo and snapshots.

Textual is imported only by the commands that draw a screen, so ``gputui
agent`` and ``gputui snapshot`` start fast and work where no UI can.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from gputui import __version__
from gputui.config import ACTION_NAMES
from gputui.sim.scenarios import scenario_names

DEMO_SCENARIOS = ["fleet", *scenario_names()]


def _add_demo_args(p: argparse.ArgumentParser, hosts: int) -> None:
    p.add_argument("--hosts", type=int, default=hosts, help=f"number of simulated hosts (default {hosts})")
    p.add_argument("--gpus", type=int, default=None, help="GPUs per host (default: the scenario's)")
    p.add_argument(
        "--scenario",
        choices=DEMO_SCENARIOS,
        default="fleet",
        help="what the simulated GPUs do; 'fleet' mixes healthy, mixed and incident hosts (default)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed: the same seed gives the same fleet")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gputui", description="Terminal dashboard for GPU cluster operations.")
    p.add_argument("--version", action="version", version=f"gputui {__version__}")
    p.add_argument("--config", type=Path, help="config file (default: $GPUTUI_CONFIG or ~/.config/gputui/config.toml)")
    p.add_argument(
        "--read-only",
        dest="ui_read_only",
        action="store_true",
        help="open the dashboard with every action refused, whatever the config allows",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("agent", help="run the agent on this host (see `gputui agent --help`)", add_help=False)
    demo = sub.add_parser("demo", help="open the dashboard on a simulated fleet")
    _add_demo_args(demo, hosts=12)
    snap = sub.add_parser("snapshot", help="print the fleet's state once, without the UI")
    where = snap.add_mutually_exclusive_group()
    where.add_argument("--demo", action="store_true", help="a simulated fleet instead of the config's hosts")
    where.add_argument("--config", dest="snap_config", type=Path, help="config file with the hosts to ask")
    _add_demo_args(snap, hosts=4)
    snap.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    snap.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for every host (default 15)")
    check = sub.add_parser("check-config", help="validate the config and try every host once")
    check.add_argument("--config", dest="check_config", type=Path, help="config file (default as for gputui)")
    check.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the hosts (default 20)")
    from gputui.health import check_cli

    _add_demo_args(check_cli.add_parser(sub), hosts=4)
    from gputui.actions.cli import add_parsers

    add_parsers(sub)
    from gputui.record import cli as record_cli

    record_cli.add_parsers(sub)
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


def _main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["agent"]:
        from gputui.agent.main import main as agent_main

        return agent_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    if args.command == "snapshot":
        return _snapshot(args)
    if args.command == "check":
        from gputui.health import check_cli

        return check_cli.run(args)
    if args.command == "check-config":
        from gputui import check_config
        from gputui.config import default_path

        status, report = check_config.run(args.check_config or args.config or default_path(), args.timeout)
        print(report, file=sys.stdout if status != 2 else sys.stderr)
        return status
    if args.command in ("record", "replay"):
        from gputui.record import cli as record_cli

        return record_cli.run(args)
    if args.command in (*ACTION_NAMES, "audit"):
        from gputui.actions import cli as action_cli

        return action_cli.run(args, args.config)
    if args.command == "bundle":
        from gputui.transport import bundle

        print(f"{args.output} sha256:{bundle.write(args.output)}")
        return 0
    if args.command == "demo":
        from gputui.ui.launch import run_demo

        return run_demo(args.hosts, args.gpus, args.scenario, args.seed, args.interval)
    from gputui.ui.launch import run_configured

    return run_configured(args.config, read_only=args.ui_read_only)


def _snapshot(args: argparse.Namespace) -> int:
    from gputui import config as cfg
    from gputui import snapshot
    from gputui.fleet.store import FleetStore
    from gputui.transport.base import Link

    store = FleetStore()
    links: list[Link]
    closing: Callable[[], Awaitable[None]] | None = None
    thresholds = None
    if args.snap_config is None:
        args.snap_config = args.config  # `gputui --config F snapshot` too
    if args.demo or (args.snap_config is None and not cfg.default_path().exists()):
        if not args.demo:
            print("no config found: showing a simulated fleet (use --config FILE for real hosts)", file=sys.stderr)
        from gputui.transport.demo import DemoFleet

        try:
            fleet = DemoFleet(args.hosts, args.gpus, args.scenario, args.seed, args.interval)
        except ValueError as exc:
            print(f"gputui: {exc}", file=sys.stderr)
            return 2
        links = list(fleet.links())
        closing = fleet.close
    else:
        from gputui.transport.from_config import links_for

        try:
            config = cfg.load(args.snap_config or cfg.default_path())
        except cfg.ConfigError as exc:
            print(f"gputui: {exc}", file=sys.stderr)
            return 2
        links = links_for(config)
        store.stale_after = config.thresholds.stale_after_intervals
        thresholds = config.thresholds
        for h in config.hosts:
            store.add_host(h.name, tuple(h.tags), h.group)

    async def look() -> None:
        await snapshot.collect(links, store, args.timeout)
        if closing is not None:
            await closing()

    asyncio.run(look())
    print(snapshot.render(store, args.format, thresholds))
    return 0 if all(r.sample is not None for r in store.hosts.values()) else 1
