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
    return GpuTuiApp(FleetStore(), fleet.links(), title=title, on_exit=fleet.close)


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
