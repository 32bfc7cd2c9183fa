"""The agent as a child process on this machine (real NVML or ``--sim``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence

from gputui.child_process import end_child
from gputui.transport.base import LinkError
from gputui.transport.lines import split_lines


def agent_argv(
    interval: float,
    sim: str | None = None,
    seed: int = 0,
    gpus: int | None = None,
    host_name: str | None = None,
    sim_processes: str = "standin",
    state_dir: str | None = None,
    act: bool = False,
    changes: bool = False,
) -> list[str]:
    """Arguments that run this installation's agent (streaming, or ``--act``
    for one action); never a shell string. ``changes``: samples as changes
    (``--changes``), for a reader that decodes them (AgentLines does)."""
    argv = [sys.executable, "-m", "gputui.agent", *(["--act"] if act else ["--interval", str(interval)])]
    if changes and not act:
        argv.append("--changes")
    if state_dir:
        argv += ["--state-dir", state_dir]
    if sim:
        argv += ["--sim", sim, "--seed", str(seed), "--sim-processes", sim_processes]
        if gpus is not None:
            argv += ["--gpus", str(gpus)]
    if host_name:
        argv += ["--host-name", host_name]
    return argv


class LocalLink:
    via: tuple[str, ...] = ()  # a child process: no jump host

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=5)

    async def lines(self) -> AsyncIterator[bytes]:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise LinkError(f"cannot start agent {self.argv[0]}: {exc.strerror}") from exc
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        drain = asyncio.ensure_future(self._drain_stderr(self.proc.stderr))
        try:
            async for line in split_lines(self.proc.stdout.read, one_per_turn=True):
                yield line
            code = await self.proc.wait()
            await drain
            detail = " | ".join(self.stderr_tail)
            raise LinkError(f"agent exited with status {code}" + (f": {detail}" if detail else ""))
        finally:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)  # so that close() may drain stderr
            await self.close()

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    async def send(self, command: dict[str, object]) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise LinkError("agent is not running")
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def close(self) -> None:
        """End the agent in bounded time (gputui/child_process.py: a bare wait can hang on its pipes)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        await end_child(proc)
