"""One way to open a fleet, for every command: the dashboard, snapshot, check and record.

A fleet is a store with its hosts, the sources that feed it and what must be
closed at the end, built from ``--demo`` or from a config file. Each host's
source is made by the module its ``transport`` names in gputui/registry.py.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from gputui import config as cfg
from gputui import registry
from gputui.fleet.store import FleetStore
from gputui.sources.base import FleetSourceFactory, HostSourceFactory, Source, SourceContext


@dataclass(frozen=True)
class DemoSpec:
    """``--demo`` and its arguments (``gputui demo``, ``snapshot --demo`` ...)."""

    hosts: int
    gpus: int | None
    scenario: str
    seed: int
    interval: float

    def title(self) -> str:
        return f"demo: {self.hosts} hosts ({self.scenario}, seed {self.seed})"


@dataclass
class Fleet:
    """What a command reads: the store (hosts listed, nothing heard yet) and the sources that will fill it."""

    store: FleetStore
    sources: list[Source]
    config: cfg.Config
    title: str
    path: Path | None = None  # the config file, when the hosts come from one
    context: SourceContext | None = None  # None for the demo: hosts cannot be added to it
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def source_for(self, host: cfg.Host) -> Source:
        """The source of a host added while running (the dashboard's add-host dialog)."""
        if self.context is None:
            raise ValueError("this fleet takes no new hosts")
        return host_source(host, self.context)

    async def close(self) -> None:
        """Close what the sources share (the demo's feeds); each source closes its own connection."""
        for close in self.closers:
            await close()


def host_source(host: cfg.Host, context: SourceContext) -> Source:
    kind = registry.source_kind(host.transport)
    make = cast(HostSourceFactory, registry.load(kind).host_source)
    return make(host, context)


def from_config(config: cfg.Config, path: Path | None = None) -> Fleet:
    """The fleet of a loaded config: every ``[[hosts]]`` entry, read as its ``transport`` says."""
    store = FleetStore(stale_after=config.thresholds.stale_after_intervals)
    for h in config.hosts:
        store.add_host(h.name, tuple(h.tags), h.group)
    context = SourceContext(config)
    title = f"gputui: {path.name}" if path is not None else "gputui"
    return Fleet(store, [host_source(h, context) for h in config.hosts], config, title, path, context)


def demo(spec: DemoSpec, config: cfg.Config | None = None) -> Fleet:
    """Simulated hosts; ``config`` gives thresholds and [notify] (``gputui --config F check --demo``).
    ValueError for a bad demo argument."""
    config = config or cfg.Config()
    make = cast(FleetSourceFactory, registry.load(registry.source_kind("demo")).fleet_sources)
    part = make(spec, config)
    return Fleet(FleetStore(), part.sources, config, spec.title(), closers=[part.close])


def config_needed(path: Path) -> str:
    """Why a command that reads hosts cannot start: no --config, and nothing at the default path."""
    how = "named by $GPUTUI_CONFIG" if os.environ.get("GPUTUI_CONFIG") else "the default; $GPUTUI_CONFIG is not set"
    return (
        f"no config file: looked for {path} ({how}) and it does not exist; "
        "give --config FILE with your hosts, or --demo for a simulated fleet"
    )


def open_fleet(path: Path | None, demo_spec: DemoSpec | None = None) -> Fleet:
    """The fleet a command asked for: the demo (with the config at ``path`` for its settings, if
    given), or the hosts of the config at ``path`` (default: $GPUTUI_CONFIG or ~/.config/...).

    ConfigError for a config that cannot be read; ValueError for a bad demo argument, or for no
    config and no --demo (never a simulated fleet unasked).
    """
    if demo_spec is not None:
        return demo(demo_spec, cfg.load(path) if path is not None else None)
    if path is None and not cfg.default_path().exists():
        raise ValueError(config_needed(cfg.default_path()))
    path = path or cfg.default_path()
    return from_config(cfg.load(path), path)


def sources_for(config: cfg.Config) -> list[Source]:
    """Every configured host's source (benchmarks and tests that follow hosts without a whole fleet)."""
    context = SourceContext(config)
    return [host_source(h, context) for h in config.hosts]
