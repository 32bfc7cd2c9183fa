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

from pydantic import ValidationError

from gputui import config as cfg
from gputui import registry
from gputui.fleet.store import FleetStore
from gputui.slurm.reader import SlurmReader
from gputui.sources.base import FleetPart, FleetSourceFactory, HostSourceFactory, Source, SourceContext


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
    problems: list[str] = field(default_factory=list)  # a source that could not list its hosts yet, and why
    followers: list[Callable[[Callable[[Source], None]], None]] = field(default_factory=list)
    slurm: SlurmReader | None = None  # [slurm]: the site's jobs, node states and reservations

    def nothing_to_read(self) -> str | None:
        """Why a command that reads hosts has none (the config lists none, or its Prometheus could
        not say which), or None when there are sources."""
        if self.sources:
            return None
        if self.problems:
            return self.problems[0]
        return f"{self.path or 'config'} lists no hosts: add a [[hosts]] table (name, and address or transport) for each GPU host"

    def follow_new(self, add: Callable[[Source], None]) -> None:
        """Hand hosts that sources find later (a Prometheus's new nodes) to ``add``: the dashboard's runner."""
        for follow in self.followers:
            follow(add)

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
    """The fleet of a loaded config: every ``[[hosts]]`` entry, read as its ``transport`` says, and
    the hosts of ``[prometheus]`` (those not in ``[[hosts]]``)."""
    store = FleetStore(stale_after=config.thresholds.stale_after_intervals)
    for h in config.hosts:
        store.add_host(h.name, tuple(h.tags), h.group)
    context = SourceContext(config)
    title = f"gputui: {path.name}" if path is not None else "gputui"
    fleet = Fleet(store, [host_source(h, context) for h in config.hosts], config, title, path, context)
    fleet.slurm = SlurmReader.from_config(config)
    if config.prometheus is not None:
        part = fleet_part("prometheus", config.prometheus, config)
        fleet.sources += part.sources
        fleet.closers.append(part.close)
        if part.problem is not None:
            fleet.problems.append(part.problem)
        if part.follow_new is not None:
            fleet.followers.append(part.follow_new)
        if path is None:
            fleet.title = f"gputui: {config.prometheus.url}"
    return fleet


def fleet_part(kind: str, settings: object, config: cfg.Config) -> FleetPart:
    make = cast(FleetSourceFactory, registry.load(registry.source_kind(kind)).fleet_sources)
    return make(settings, config)


def demo(spec: DemoSpec, config: cfg.Config | None = None) -> Fleet:
    """Simulated hosts; ``config`` gives thresholds and [notify] (``gputui --config F check --demo``).
    ValueError for a bad demo argument."""
    config = config or cfg.Config()
    part = fleet_part("demo", spec, config)
    return Fleet(FleetStore(), part.sources, config, spec.title(), closers=[part.close])


def config_needed(path: Path) -> str:
    """Why a command that reads hosts cannot start: no --config, and nothing at the default path."""
    how = "named by $GPUTUI_CONFIG" if os.environ.get("GPUTUI_CONFIG") else "the default; $GPUTUI_CONFIG is not set"
    return (
        f"no config file: looked for {path} ({how}) and it does not exist; "
        "give --config FILE with your hosts, or --demo for a simulated fleet"
    )


def open_fleet(path: Path | None, demo_spec: DemoSpec | None = None, prometheus_url: str | None = None) -> Fleet:
    """The fleet a command asked for: the demo (with the config at ``path`` for its settings, if
    given), or the hosts of the config at ``path`` (default: $GPUTUI_CONFIG or ~/.config/...), with
    ``--prometheus URL`` in place of the config's [prometheus] url (no config file needed then).

    ConfigError for a config that cannot be read; ValueError for a bad demo argument or URL, or for
    no config, no --prometheus and no --demo (never a simulated fleet unasked).
    """
    if demo_spec is not None:
        return demo(demo_spec, cfg.load(path) if path is not None else None)
    if path is None and not cfg.default_path().exists():
        if prometheus_url is None:
            raise ValueError(config_needed(cfg.default_path()))
        return from_config(with_prometheus(cfg.Config(), prometheus_url))
    path = path or cfg.default_path()
    config = cfg.load(path)
    return from_config(with_prometheus(config, prometheus_url) if prometheus_url else config, path)


def with_prometheus(config: cfg.Config, url: str) -> cfg.Config:
    """``config`` reading the Prometheus at ``url`` (its other [prometheus] settings kept); ValueError for a bad URL."""
    try:
        settings = cfg.Prometheus(url=url) if config.prometheus is None else config.prometheus.model_copy(update={"url": url})
        settings = cfg.Prometheus.model_validate(settings.model_dump())
    except ValidationError as exc:
        raise ValueError(f"--prometheus: {str(exc.errors()[0]['msg']).removeprefix('Value error, ')}") from None
    return config.model_copy(update={"prometheus": settings})


def sources_for(config: cfg.Config) -> list[Source]:
    """Every configured host's source (benchmarks and tests that follow hosts without a whole fleet)."""
    context = SourceContext(config)
    return [host_source(h, context) for h in config.hosts]
