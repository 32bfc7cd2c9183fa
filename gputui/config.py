"""Configuration: TOML read with tomllib, checked with pydantic.

A mistake in the file is reported as the file, the key (``hosts[2].port``,
with the host's name when it has one) and what was expected, never as a
traceback: the operator fixing it at 3 a.m. should not need to read Python.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gputui import registry
from gputui.protocol import ALL_ACTIONS, MAX_TERM_WAIT_S

# They separate a target's parts (gpu-07:0,1) and the words of a command line.
HOST_NAME_SEPARATORS = ":,"


class ConfigError(Exception):
    """The config cannot be used; ``str()`` is the message for the operator."""


class _Strict(BaseModel):
    # strict: "22" is not a port and true is not 1; a TOML integer still fills a float.
    model_config = ConfigDict(extra="forbid", strict=True)


class Thresholds(_Strict):
    """What the health rules (gputui/health, docs/health.md) alert on, and how they damp flapping."""

    temp_margin_c: int = Field(5, ge=0, le=50, description="alert when a GPU is this close to its slowdown temperature")
    temp_hysteresis_c: float = Field(
        2.0, ge=0, le=20, description="a thermal alert clears only once the margin is above temp_margin_c plus this"
    )
    mem_used_pct: float = Field(95.0, gt=0, le=100, description="alert when a GPU's memory is this full")
    mem_hysteresis_pct: float = Field(
        3.0, ge=0, le=50, description="a memory alert clears only once use is this many points below mem_used_pct"
    )
    idle_holding_minutes: float = Field(15.0, gt=0, description="memory held at <= 5% utilisation this long is idle-holding")
    stale_after_intervals: int = Field(3, ge=1, le=100)
    alert_hold_s: float = Field(
        10.0, ge=0, le=3600, description="a condition must hold this long before it alerts (XIDs and lost GPUs alert at once)"
    )
    alert_clear_s: float = Field(30.0, ge=0, le=3600, description="an alert goes only after its condition was clear this long")
    xid_window_minutes: float = Field(60.0, gt=0, le=10080, description="an XID stays an alert this long after it happened")
    counter_window_minutes: float = Field(
        10.0, gt=0, le=1440, description="a rise of an error counter (PCIe replays, NVLink, corrected ECC) counts this long"
    )


class Ssh(_Strict):
    """How to reach hosts over SSH; ssh_config still applies on top."""

    config_file: str | None = Field(None, description="ssh_config to read (default ~/.ssh/config when it exists)")
    known_hosts: str | None = Field(None, description="known_hosts file (default ~/.ssh/known_hosts)")
    identity_files: list[str] = Field(default_factory=list)
    accept_new: bool = Field(False, description="trust and record the key of a host never seen before")
    connect_timeout_s: float = Field(10.0, gt=0, le=300)
    keepalive_s: float = Field(5.0, gt=0, le=300)
    max_handshakes: int = Field(32, ge=1, le=1024)
    remote_dir: str = Field(".cache/gputui", min_length=1, description="agent cache, relative to the remote home")
    compression: bool = Field(True, description="zlib on the wire: telemetry JSON shrinks several times")


ActionName = Literal[
    "reserve", "release", "drain", "undrain", "kill", "drain-node", "resume-node", "reserve-node", "release-node"
]
ActionOrAny = Literal[
    "reserve", "release", "drain", "undrain", "kill", "drain-node", "resume-node", "reserve-node", "release-node", "*"
]
ACTION_NAMES: tuple[str, ...] = ALL_ACTIONS


def _one_of(what: str, names: Callable[[], tuple[str, ...]]) -> AfterValidator:
    """A name the registry lists (read when a config is checked, so a kind added there is valid here)."""

    def check(value: str) -> str:
        if value not in names():
            raise ValueError(f"unknown {what} {value!r}; known: {', '.join(names())}")
        return value

    return AfterValidator(check)


# Names from gputui/registry.py: a new source kind or action backend is valid here once it is listed there.
Backend = Annotated[str, _one_of("action backend", registry.backend_names)]
Transport = Annotated[str, _one_of("transport", registry.host_kinds)]


class PolicyRule(_Strict):
    """Who may do what where. A rule matches when the operator (local user
    name or one of the operator's SSH key fingerprints), the action and every
    target host's group are listed; ``"*"`` matches anything."""

    operators: list[str] = Field(min_length=1)
    actions: list[ActionOrAny] = Field(min_length=1)
    groups: list[str] = Field(default_factory=lambda: ["*"], min_length=1)


class Actions(_Strict):
    """Guarded actions. Off unless enabled: a dashboard is read-only by default."""

    enabled: bool = False
    backend: Backend = Field("ledger", description="default enforcement backend: ledger, nvml, slurm or slurmctld")
    state_dir: str | None = Field(
        None, description="ledger folder on the hosts (default /var/lib/gputui, else ~/.local/state/gputui)"
    )
    max_gpus: int = Field(8, ge=1, description="most GPUs one action may touch without --force")
    max_hosts: int = Field(1, ge=1, description="most hosts one action may touch without --force")
    term_wait_s: float = Field(
        10.0, gt=0, le=MAX_TERM_WAIT_S, description="how long kill waits for SIGTERM to work (the hosts allow 300 s at most)"
    )
    audit_log: str = Field("~/.local/state/gputui/audit.jsonl", min_length=1)
    policy: list[PolicyRule] = Field(default_factory=list)


# What a notify command's arguments may name, each replaced within its own argument (never split, never a shell).
NOTIFY_PLACEHOLDERS = ("severity", "host", "gpu", "where", "title", "advice", "time", "rule", "key")
PLACEHOLDER = re.compile(r"\{(\w*)\}")


class Notify(_Strict):
    """Who hears of a new critical alert, and how often at most (gputui/health/notify.py)."""

    command: list[str] | None = Field(
        None, description="argument list run once per notification, no shell; {title} etc. replaced; the JSON on stdin"
    )
    webhook: str | None = Field(None, description="http:// or https:// URL the notification is POSTed to as JSON")
    max_per_minute: int = Field(6, ge=1, le=600, description="more than this in a minute are summarised in one notification")
    timeout_s: float = Field(10.0, gt=0, le=300, description="a command or webhook slower than this has failed")
    state_file: str = Field(
        "~/.local/state/gputui/notified.json", min_length=1, description="what gputui check --notify sent, for its next run"
    )

    @property
    def active(self) -> bool:
        return bool(self.command or self.webhook)

    @field_validator("command", mode="before")
    @classmethod
    def _argument_list(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                f'expected a list of arguments such as ["/usr/local/bin/page-oncall", "{{title}}"] (it is never run '
                f"through a shell), got {value!r}"
            )
        return value

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0]):
            raise ValueError("expected the program to run first, got an empty list or an empty program name")
        for i, arg in enumerate(value or ()):
            unknown = [m for m in PLACEHOLDER.findall(arg) if m not in NOTIFY_PLACEHOLDERS]
            if unknown:
                known = ", ".join(f"{{{n}}}" for n in NOTIFY_PLACEHOLDERS)
                raise ValueError(f"argument {i} ({arg!r}) names {{{unknown[0]}}}; known: {known}")
        return value

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            scheme, _, rest = value.partition("://")
            if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
                raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
        return value


class Prometheus(_Strict):
    """A Prometheus that scrapes dcgm-exporter (or ``gputui agent --metrics-listen``):
    its hosts are read from it, one query per metric family per refresh (gputui/sources/prometheus.py)."""

    url: str = Field(description="the HTTP API root, e.g. http://prometheus.example:9090")
    selector: str = Field("", description='label matchers added to every query, e.g. {cluster="a"}')
    host_label: str | None = Field(
        None, min_length=1, description="the label naming a GPU's host (default: Hostname, else hostname; instance is common)"
    )
    bearer_token_file: str | None = Field(None, min_length=1, description="a file holding the bearer token (never logged)")
    ca_file: str | None = Field(None, min_length=1, description="CA bundle for an https:// URL (default: the system's)")
    timeout_s: float = Field(10.0, gt=0, le=300, description="a query slower than this has failed")
    refresh_s: float = Field(5.0, ge=0.2, le=300, description="seconds between reads of the whole fleet")
    scrape_interval_s: float = Field(
        30.0, ge=0.2, le=3600, description="how often Prometheus scrapes the exporters, until measured (staleness)"
    )
    max_answer_mib: float = Field(64.0, gt=0, le=4096, description="a larger answer is refused, not read")
    xid_window: str = Field("15m", pattern=r"^[0-9]+[smh]$", description="an XID gauge that changed within this is an event")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
        return value.rstrip("/")

    @field_validator("selector")
    @classmethod
    def _matchers(cls, value: str) -> str:
        text = value.strip()
        if text and not (text.startswith("{") and text.endswith("}")):
            raise ValueError(f'expected label matchers in braces, such as {{cluster="a"}}, got {value!r}')
        return text

    @field_validator("host_label")
    @classmethod
    def _label_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"expected a Prometheus label name (letters, digits, _), got {value!r}")
        return value


class Slurm(_Strict):
    """The site's Slurm controller, read from the dashboard's machine (gputui/slurm/reader.py):
    jobs on GPUs, node states and reservations, three commands a refresh for the whole cluster."""

    enabled: bool = Field(True, description="read Slurm (a [slurm] section with enabled = false keeps the settings)")
    conf: str | None = Field(None, min_length=1, description="the cluster's slurm.conf (SLURM_CONF; default: Slurm's own)")
    refresh_s: float = Field(10.0, ge=1.0, le=3600, description="seconds between reads of the cluster")
    timeout_s: float = Field(10.0, gt=0, le=300, description="a command slower than this has failed")
    bin_dir: str | None = Field(None, min_length=1, description="where squeue, sinfo and scontrol are (default: PATH)")


class Group(_Strict):
    description: str = ""
    backend: Backend | None = None


class Host(_Strict):
    name: str = Field(min_length=1)
    address: str | None = None
    user: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    tags: list[str] = Field(default_factory=list)
    group: str | None = None
    transport: Transport = Field("ssh", description="how the host is read: a source kind of gputui/registry.py")
    sim: str | None = None
    seed: int = 0
    gpus: int | None = Field(None, ge=1, le=64)
    sim_processes: Literal["standin", "synthetic"] = "standin"
    identity_files: list[str] = Field(default_factory=list)
    accept_new: bool | None = None
    remote_dir: str | None = None
    backend: Backend | None = Field(None, description="enforcement backend for actions (default: the group's, then [actions])")
    slurm_node: str | None = Field(None, min_length=1, description="the host's Slurm NodeName (default: its name)")
    temp_slowdown_c: int | None = Field(
        None,
        ge=40,
        le=130,
        description="slowdown temperature for GPUs read through nvidia-smi that cannot say it (default: the model's)",
    )

    @field_validator("name")
    @classmethod
    def _targetable_name(cls, value: str) -> str:
        bad = sorted({c for c in value if c in HOST_NAME_SEPARATORS or c.isspace() or not c.isprintable()})
        if bad:
            shown = ", ".join(repr(c) for c in bad)
            raise ValueError(
                f"{value!r} contains {shown}: a host name may be any text without ':', ',', spaces or control "
                "characters, since actions name their targets as HOST:0,1 (e.g. gpu-07, gpu_07, gpu-07.lab)"
            )
        return value

    @field_validator("sim")
    @classmethod
    def _known_scenario(cls, value: str | None) -> str | None:
        if value is not None:
            from gputui.sources.simulated import scenario_problem  # the simulator's own list, read on use

            problem = scenario_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value


class Config(_Strict):
    interval: float = Field(1.0, ge=0.1, le=60.0, description="seconds between samples")
    theme: str = "gputui-dark"
    thresholds: Thresholds = Field(default_factory=Thresholds)
    ssh: Ssh = Field(default_factory=Ssh)
    groups: dict[str, Group] = Field(default_factory=dict)
    hosts: list[Host] = Field(default_factory=list)
    actions: Actions = Field(default_factory=Actions)
    notify: Notify = Field(default_factory=Notify)
    prometheus: Prometheus | None = None
    slurm: Slurm | None = None

    def backend_of(self, host: Host) -> str:
        """The host's own backend, else its group's, else the default."""
        if host.backend is not None:
            return host.backend
        group = self.groups.get(host.group) if host.group else None
        if group is not None and group.backend is not None:
            return group.backend
        return self.actions.backend

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    @model_validator(mode="after")
    def _check_references(self) -> Config:
        seen: set[str] = set()
        for i, host in enumerate(self.hosts):
            if host.name in seen:
                raise ValueError(f"hosts[{i}] ({host.name}).name: {host.name!r} appears twice; host names must be unique")
            seen.add(host.name)
            if host.group is not None and host.group not in self.groups:
                known = ", ".join(sorted(self.groups)) or "none defined"
                raise ValueError(f"hosts[{i}] ({host.name}).group: group {host.group!r} is not defined under [groups] ({known})")
        for i, rule in enumerate(self.actions.policy):
            for group in rule.groups:
                if group != "*" and group not in self.groups:
                    known = ", ".join(sorted(self.groups)) or "none defined"
                    raise ValueError(f"actions.policy[{i}].groups: group {group!r} is not defined under [groups] ({known})")
        return self


def default_path() -> Path:
    env = os.environ.get("GPUTUI_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gputui" / "config.toml"


def load(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, str(path))


def parse(data: dict[str, Any], where: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [f"{where}: {describe(err, data)}" for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def describe(err: Any, data: dict[str, Any]) -> str:
    """One pydantic error in the operator's words: key, problem, value found."""
    loc = list(err["loc"])
    key = _key(loc, data)
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        return f"{key}: unknown key (check its spelling; see config.example.toml)"
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind == "value_error":
        return str(err["ctx"]["error"]) if not loc else f"{key}: {err['ctx']['error']}"
    return f"{key}: {err['msg'].lower()}, got {found!r}"


def _key(loc: list[Any], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str) and len(parts) == 1:
                parts[-1] += f" ({node['name']})"
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "config"
