"""Where each kind of data source and action backend is built, by the name a config uses.

A kind is named here and built by its own module, imported only when that
kind is used: checking a config, or reading a demo fleet, loads neither
asyncssh nor an HTTP client it does not need. Adding a kind is one module
plus one line below (README: "Adding a source", "Adding an action backend").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Literal


@dataclass(frozen=True)
class SourceKind:
    """``host`` kinds read one ``[[hosts]]`` entry (its ``transport``); ``fleet``
    kinds name their own hosts (the demo: ``--demo``)."""

    name: str
    module: str
    scope: Literal["host", "fleet"]
    summary: str


@dataclass(frozen=True)
class BackendKind:
    """``agent`` backends are carried to the host's ``gputui agent --act``, which
    enforces them there; ``control-plane`` ones run from the dashboard against
    a cluster's own API (Slurm's controller, say), and no agent is involved."""

    name: str
    module: str
    flavour: Literal["agent", "control-plane"]
    summary: str


SOURCE_KINDS: tuple[SourceKind, ...] = (
    SourceKind("ssh", "gputui.sources.ssh", "host", "the agent over SSH (nvidia-smi where the host has no python3)"),
    SourceKind("local", "gputui.sources.local", "host", "the agent as a child process of the dashboard"),
    SourceKind("nvidia-smi", "gputui.sources.nvidia_smi", "host", "nvidia-smi over SSH; nothing is uploaded"),
    SourceKind("demo", "gputui.sources.demo", "fleet", "simulated hosts (gputui demo, --demo)"),
    SourceKind("prometheus", "gputui.sources.prometheus", "fleet", "dcgm-exporter's metrics in a Prometheus ([prometheus])"),
)

ACTION_BACKENDS: tuple[BackendKind, ...] = (
    BackendKind("ledger", "gputui.actions.backends.agent", "agent", "the host's ledger, NVML compute mode untouched"),
    BackendKind("nvml", "gputui.actions.backends.agent", "agent", "the host's ledger and NVML compute mode PROHIBITED"),
    BackendKind("slurm", "gputui.actions.backends.agent", "agent", "scontrol run on the host by its agent"),
    BackendKind(
        "slurmctld", "gputui.actions.backends.slurmctld", "control-plane", "scontrol run here against the Slurm controller"
    ),
)


def host_kinds() -> tuple[str, ...]:
    """The names a ``[[hosts]]`` entry's ``transport`` may take."""
    return tuple(k.name for k in SOURCE_KINDS if k.scope == "host")


def backend_names() -> tuple[str, ...]:
    return tuple(k.name for k in ACTION_BACKENDS)


def source_kind(name: str) -> SourceKind:
    for kind in SOURCE_KINDS:
        if kind.name == name:
            return kind
    raise ValueError(f"unknown source kind {name!r}; known: {', '.join(k.name for k in SOURCE_KINDS)}")


def backend_kind(name: str) -> BackendKind:
    for kind in ACTION_BACKENDS:
        if kind.name == name:
            return kind
    raise ValueError(f"unknown action backend {name!r}; known: {', '.join(backend_names())}")


def load(kind: SourceKind | BackendKind) -> ModuleType:
    """The module that builds ``kind``, imported now (and once: Python keeps it)."""
    return importlib.import_module(kind.module)
