"""What the guard needs from a backend: a preview and an apply, per host.

Two flavours (gputui/registry.py, ``BackendKind.flavour``):

- ``agent`` (ledger, nvml, slurm): the request is carried to the host's own
  ``gputui agent --act``, which checks it against the host's ledger and does
  the work there (:mod:`gputui.actions.backends.agent`);
- ``control-plane`` (slurmctld): the dashboard acts through the cluster's own
  API, here ``scontrol`` against Slurm's controller, and no agent is involved
  (:mod:`gputui.actions.backends.slurmctld`).

Either way the answer is a :class:`~gputui.actions.model.HostAnswer`, and a
failure (the host unreachable, a command missing, refusing or too slow) is a
failed answer with the reason: never an exception, so that one host's trouble
cannot stop the others or the audit.
"""

from __future__ import annotations

from typing import Protocol

from gputui.actions.model import HostAnswer, HostRequest
from gputui.config import Config, Host


class ActionBackend(Protocol):
    async def preview(self, host: Host, request: HostRequest, timeout: float) -> HostAnswer:
        """What ``request`` (phase ``preview``) would do on ``host``; changes nothing."""
        ...

    async def apply(self, host: Host, request: HostRequest, preview: HostAnswer, timeout: float) -> HostAnswer:
        """Do ``request`` (phase ``apply``) on ``host``, unless what ``preview``
        was judged against has changed since (then a failed answer with
        ``conflict``)."""
        ...


class BackendFactory(Protocol):
    """The one function each backend module exposes, named ``backend``."""

    def __call__(self, config: Config) -> ActionBackend: ...
