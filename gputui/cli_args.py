"""Arguments the commands share: number types that say what is wrong, the demo's options, and
the parser class whose usage errors exit with the command's own status (3 for ``gputui check``).

Its own module so that each command's front end (gputui/cli.py, record, check, the actions)
takes them from one place rather than from another command's module.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from gputui.sim.scenarios import scenario_names

if TYPE_CHECKING:
    from gputui.sources.fleet import DemoSpec

DEMO_SCENARIOS = ["fleet", *scenario_names()]
# The bounds of the config's `interval` (gputui/config.py, Config.interval: a pydantic Field,
# not a constant to import); tests/test_cli_args.py fails if the two part.
INTERVAL_MIN_S = 0.1
INTERVAL_MAX_S = 60.0


class CommandParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error exits ``usage_status``: 2, or 3 (UNKNOWN) for ``gputui check``.

    Subparsers are of the same class, so ``sub.add_parser(..., usage_status=3)`` sets it per command.
    """

    def __init__(self, *args: Any, usage_status: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.usage_status = usage_status

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_status, f"{self.prog}: error: {message}\n")


def number_arg(text: str) -> float:
    """A number on the command line; argparse's message when it is not one."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def interval_arg(text: str) -> float:
    """``--interval``: seconds between samples, within the config's bounds (0 would spin)."""
    value = number_arg(text)
    if not INTERVAL_MIN_S <= value <= INTERVAL_MAX_S:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"must be between {INTERVAL_MIN_S:g} and {INTERVAL_MAX_S:g} seconds (as the config's interval), got {text}"
        )
    return value


def positive_seconds_arg(text: str) -> float:
    """A length of time that must be more than nothing and finite."""
    value = number_arg(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


class DemoOption(argparse.Action):
    """Stores the value as ``store`` does, and notes the option as given: a demo's option given
    with a config's hosts is refused (:func:`demo_spec`), not ignored."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.demo_options_given = [*getattr(namespace, "demo_options_given", []), option]


def add_demo_args(p: argparse.ArgumentParser, hosts: int) -> None:
    p.add_argument(
        "--hosts", type=int, default=hosts, action=DemoOption, help=f"number of simulated hosts (default {hosts}, at most 16384)"
    )
    p.add_argument("--gpus", type=int, default=None, action=DemoOption, help="GPUs per host (default: the scenario's)")
    p.add_argument(
        "--scenario",
        choices=DEMO_SCENARIOS,
        default="fleet",
        action=DemoOption,
        help="what the simulated GPUs do; 'fleet' mixes healthy, mixed and incident hosts (default)",
    )
    p.add_argument("--seed", type=int, default=0, action=DemoOption, help="seed: the same seed gives the same fleet")
    p.add_argument(
        "--interval",
        type=interval_arg,
        default=1.0,
        action=DemoOption,
        help=f"seconds between samples, {INTERVAL_MIN_S:g} to {INTERVAL_MAX_S:g} (default 1)",
    )


def demo_spec(args: argparse.Namespace) -> DemoSpec | None:
    """The simulated fleet ``--demo`` asks for (with add_demo_args's options), or None without it."""
    from gputui.sources.fleet import DemoSpec

    if not args.demo:
        given = sorted(set(getattr(args, "demo_options_given", [])))
        if given:  # the config's hosts (or Prometheus's) take none of them: said, not ignored
            why = "for a simulated fleet (--demo) only; the config says which hosts, and how often"
            raise ValueError(f"{', '.join(given)}: {why}")
        return None
    return DemoSpec(args.hosts, args.gpus, args.scenario, args.seed, args.interval)


def add_prometheus_arg(p: Any, dest: str) -> None:
    """``--prometheus URL``; each command keeps it under its own ``dest``, so that a subcommand's
    default does not hide ``gputui --prometheus URL snapshot``'s."""
    p.add_argument(
        "--prometheus",
        dest=dest,
        metavar="URL",
        help="read the fleet from this Prometheus (dcgm-exporter's metrics; the config's [prometheus] settings apply)",
    )


def prometheus_url(args: argparse.Namespace, own: str | None) -> str | None:
    """``--prometheus`` given to the command (``own``) or before it; ValueError with ``--demo``."""
    url: str | None = own or args.ui_prometheus
    if url is not None and args.demo:
        raise ValueError("--prometheus and --demo: choose one")
    return url
