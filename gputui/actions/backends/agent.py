"""The ``agent`` flavour (backends ledger, nvml, slurm): one request carried to
one host's ``gputui agent --act`` and back.

Over SSH the request rides on stdin of a fresh channel; for a local host it
is a child process. Either way a failure to reach the host, or an answer
that is not what docs/actions.md promises, becomes that host's failed
answer with the reason: never an exception that stops the other hosts. The
host checks an apply against its ledger (``expect_version``), so the preview
the guard holds is not needed here.
"""

from __future__ import annotations

import asyncio
import json

from pydantic import ValidationError

from gputui.actions.model import HostAnswer, HostRequest
from gputui.child_process import end_child
from gputui.config import Config, Host
from gputui.protocol import CONTROL_PLANE_ACTIONS
from gputui.transport.base import LinkError
from gputui.transport.local import agent_argv
from gputui.transport.ssh import SshLink, SshShared

ANSWER_LIMIT = 4 * 1024 * 1024
NO_AGENT = (
    'the host is read through nvidia-smi only (transport = "nvidia-smi"): no agent runs there to do it; '
    'a whole node can be drained with backend = "slurmctld"'
)
CONTROL_PLANE_ONLY = (
    "{action} makes or ends a Slurm reservation at Slurm's controller, which no host's agent does: "
    'give the host backend = "slurmctld" (its slurm_node names the node); '
    "with this host's backend, reserve its GPUs (reserve HOST:0,1) or drain the node (drain-node)"
)


def backend(config: Config) -> AgentBackend:
    return AgentBackend(config)


def payload(request: HostRequest) -> bytes:
    """The request's bytes on the wire: one line of JSON."""
    return json.dumps(request.wire(), ensure_ascii=False).encode("utf-8") + b"\n"


class AgentBackend:
    """Asks hosts' agents; SSH hosts share one agent bundle and handshake cap."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.shared: SshShared | None = None

    async def preview(self, host: Host, request: HostRequest, timeout: float) -> HostAnswer:
        return await self.ask(host, request, timeout)

    async def apply(self, host: Host, request: HostRequest, preview: HostAnswer, timeout: float) -> HostAnswer:
        return await self.ask(host, request, timeout)

    async def ask(self, host: Host, request: HostRequest, timeout: float) -> HostAnswer:
        phase = request.phase
        if request.action in CONTROL_PLANE_ACTIONS:  # never sent: the agent would refuse it as unknown
            return HostAnswer.failure(CONTROL_PLANE_ONLY.format(action=request.action), phase)
        if host.transport == "nvidia-smi":  # the site allows nothing of gputui to run there
            return HostAnswer.failure(NO_AGENT, phase)
        data = payload(request)
        try:
            async with asyncio.timeout(timeout):
                raw = await (self._local(host, data) if host.transport == "local" else self._ssh(host, data))
        except TimeoutError:
            why = f"no answer within {timeout:.0f}s; the action may or may not have run: look before retrying"
            return HostAnswer.failure(why, phase)
        except LinkError as exc:
            return HostAnswer.failure(str(exc), phase)
        return parse_answer(raw, phase)

    async def _ssh(self, host: Host, data: bytes) -> bytes:
        if self.shared is None:
            self.shared = SshShared.create(self.config.ssh, self.config.interval, self.config.actions.state_dir)
        return await SshLink(host, self.shared).act(data)

    async def _local(self, host: Host, data: bytes) -> bytes:
        argv = agent_argv(
            self.config.interval,
            host.sim,
            host.seed,
            host.gpus,
            host_name=host.name if host.sim else None,
            sim_processes=host.sim_processes,
            state_dir=self.config.actions.state_dir,
            act=True,
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise LinkError(f"cannot start the agent: {exc.strerror}") from None
        try:
            out, err = await proc.communicate(data)
        except asyncio.CancelledError:
            await end_child(proc, term_s=0)
            raise
        if not out.strip():
            raise LinkError(f"the agent gave no answer (status {proc.returncode}): {err.decode('utf-8', 'replace')[-300:]}")
        return out


def parse_answer(raw: bytes, phase: str) -> HostAnswer:
    if len(raw) > ANSWER_LIMIT:
        return HostAnswer.failure(f"the host's answer is over {ANSWER_LIMIT} bytes", phase)
    line = raw.strip().split(b"\n")[-1]
    try:
        return HostAnswer.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return HostAnswer.failure(f"the host's answer is malformed ({where}: {first['msg']}): {line[:200]!r}", phase)
