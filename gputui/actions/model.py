"""An action as data: what, where, who and why, before anything runs.

The same objects come from the CLI's arguments and from the UI's selection,
so both pass through one guard. What the hosts answer is parsed into
``HostAnswer`` at the boundary; a malformed answer is a failure of that
host, never of the guard.
"""

from __future__ import annotations

import getpass
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from gputui import registry
from gputui.protocol import ALL_ACTIONS, GPU_ACTIONS, MAX_TERM_WAIT_S, SLURM_NODE_NAME, words_problem

# Actions whose confirmation is typed, not a keypress: they stop work.
TYPED_CONFIRM = frozenset({"kill", "drain", "drain-node"})


@dataclass(frozen=True)
class Target:
    """One host and what on it: GPUs (indices or UUIDs), a pid, or the node."""

    host: str
    gpus: tuple[str, ...] = ()
    pid: int | None = None

    def label(self) -> str:
        if self.pid is not None:
            return f"{self.host}:pid={self.pid}"
        return f"{self.host}:{','.join(self.gpus)}" if self.gpus else self.host


@dataclass(frozen=True)
class Operator:
    """Who acts: the local user, this machine, and the SSH keys they hold."""

    user: str
    host: str
    keys: tuple[str, ...] = ()

    @classmethod
    def local(cls, keys: tuple[str, ...] = ()) -> Operator:
        return cls(getpass.getuser(), socket.gethostname(), keys)

    def label(self) -> str:
        return f"{self.user}@{self.host}"

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.user, "host": self.host, "keys": list(self.keys)}


@dataclass
class ActionRequest:
    kind: str
    targets: list[Target]
    reason: str
    ticket: str | None = None
    holder: str | None = None  # reserve, reserve-node: who the GPUs or the node are held for
    until: float | None = None  # reserve, reserve-node: epoch seconds
    kill_after: bool = False  # kill: SIGKILL when SIGTERM is not honoured
    term_wait_s: float | None = None
    force: bool = False  # past the blast-radius limit
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(t.host for t in self.targets))

    def gpu_count(self) -> int:
        return sum(len(t.gpus) for t in self.targets)

    def summary(self) -> str:
        return f"{self.kind} {' '.join(t.label() for t in self.targets)}"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GpuState(_Answer):
    index: int
    uuid: str | None = None
    state: str = "free"
    holder: str | None = None


class Affected(_Answer):
    gpu: int | None = None
    uuid: str | None = None
    pid: int
    pid_start: int | None = None
    user: str | None = None
    command: str | None = None
    job: str | None = None


class NodeState(_Answer):
    """A node as its scheduler sees it (control-plane backends): what a preview
    saw, so that the apply can tell whether someone changed it meanwhile."""

    name: str
    state: str  # Slurm's State=, e.g. "IDLE", "MIXED+DRAIN"
    reason: str | None = None  # Slurm's Reason=, with its "[user@time]" stamp
    # reserve-node and release-node: gputui's reservation of the node as Slurm has
    # it (slurm_reservation.reservation_words), "none" when it has none; None when not looked at.
    reservation: str | None = None


class HostAnswer(_Answer):
    """One host's answer to a preview or an apply (docs/actions.md)."""

    ok: bool
    phase: str = "preview"
    host: str | None = None
    error: str | None = None
    conflict: bool = False
    ledger_version: int | None = None
    state_dir: str | None = None
    gpus: list[GpuState] = Field(default_factory=list)
    commands: list[list[str]] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    affected: list[Affected] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    done: list[str] = Field(default_factory=list)
    node: NodeState | None = None  # control-plane backends: the node as the scheduler has it

    @classmethod
    def failure(cls, message: str, phase: str) -> HostAnswer:
        return cls(ok=False, phase=phase, error=message)


# -- the request a backend is handed (and an agent is sent) ---------------------


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _known_action(value: str) -> str:
    if value not in ALL_ACTIONS:
        raise ValueError(f"unknown action {value!r} (known: {', '.join(ALL_ACTIONS)})")
    return value


def _known_backend(value: str) -> str:
    if value not in registry.backend_names():
        raise ValueError(f"unknown backend {value!r} (known: {', '.join(registry.backend_names())})")
    return value


def _node_name(value: str) -> str:
    if not SLURM_NODE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slurm node name")
    return value


def _term_wait(value: float) -> float:
    if not 0 <= value <= MAX_TERM_WAIT_S:
        raise ValueError(f"must be a number of seconds from 0 to {MAX_TERM_WAIT_S:g}")
    return value


def _future(value: float) -> float:
    if value <= time.time():
        raise ValueError("is in the past")
    return value


# A JSON number, kept as given (an int stays an int on the wire); no bools, no NaN or infinity.
Number = Annotated[StrictInt | StrictFloat, AfterValidator(_finite)]


class HostOperator(BaseModel):
    """Who asks, as the request carries it (``Operator.as_dict``)."""

    model_config = ConfigDict(extra="allow")

    user: StrictStr = Field(min_length=1)
    host: StrictStr | None = None
    keys: list[StrictStr] = Field(default_factory=list)


class HostRequest(BaseModel):
    """One preview or apply for one host: the action request of docs/actions.md.

    Defined once for both ends: the guard builds it and hands it to the host's
    backend (an agent flavour sends ``wire()``, whose keys and values are the
    request's JSON); the agent parses the same fields with the standard library
    only (``gputui.agent.act_request``, its ``KNOWN_FIELDS``), and
    tests/test_host_request.py holds the two to accepting and refusing alike.
    The one difference by design: ``backend`` may name a control-plane backend
    (slurmctld) and ``action`` a control-plane action (reserve-node,
    release-node) here, which an agent refuses, as it is never sent one.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    v: Literal[1]  # ACTION_PROTOCOL; required, as the agent requires it
    phase: Literal["preview", "apply"]
    action: Annotated[StrictStr, AfterValidator(_known_action)]
    gpus: list[StrictStr | StrictInt] = Field(default_factory=list)
    pid: StrictInt | None = None
    pid_start: StrictInt | None = None
    backend: Annotated[StrictStr, AfterValidator(_known_backend)] | None = "ledger"
    slurm_node: Annotated[StrictStr, AfterValidator(_node_name)] | None = None
    operator: HostOperator
    reason: StrictStr
    ticket: StrictStr | None = None
    holder: StrictStr | None = Field(None, alias="for")
    until: Annotated[Number, AfterValidator(_future)] | None = None
    term_wait_s: Annotated[Number, AfterValidator(_term_wait)] | None = 10.0
    kill_after: StrictBool = False
    expect_version: StrictInt | None = None
    audit_id: StrictStr | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HostRequest:
        if not self.reason.strip():
            raise ValueError("a reason is required: say why, it goes to the ledger and syslog")
        problem = words_problem(self.reason, self.ticket)
        if problem is not None:
            raise ValueError(problem)
        if self.action in GPU_ACTIONS and not self.gpus:
            raise ValueError(f"{self.action} needs at least one GPU in 'gpus'")
        if self.action not in GPU_ACTIONS and self.gpus:
            raise ValueError(f"{self.action} takes no 'gpus'")
        if self.action == "kill" and (self.pid is None or self.pid <= 1):
            raise ValueError("kill needs 'pid', a process id above 1")
        if self.action == "reserve" and not (self.holder or "").strip():
            raise ValueError("reserve needs 'for': the user or team the GPUs are held for")
        return self

    def wire(self) -> dict[str, Any]:
        """The request as JSON carries it (``for``, not ``holder``)."""
        return self.model_dump(by_alias=True)


def request_problem(exc: ValidationError) -> str:
    """A request the model refuses, in the words an agent would use: the field and why."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    why = str(first["msg"]).removeprefix("Value error, ")
    return f"'{where}' {why}" if where else why
