"""Reading the cluster: ``squeue --json``, ``sinfo --json`` and ``scontrol show
reservation -o``, once a refresh for the whole cluster (never per host), run on
the dashboard's machine from argument lists with the ``[slurm]`` settings.

A failed or slow command keeps the last good reading and says why in
``SlurmView.error``: during an incident the controller may be the thing that
is struggling, and the screen must say the jobs it shows are old rather than
show none.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gputui.child_process import end_child
from gputui.config import Config, Slurm
from gputui.slurm import parse
from gputui.slurm.model import SlurmView

Commands = tuple[list[str], list[str], list[str]]


class SlurmReader:
    def __init__(self, settings: Slurm, node_of: dict[str, str]) -> None:
        self.settings = settings
        self.node_of = node_of
        self.view = SlurmView(node_of=node_of, error="not read yet")
        self.reads = 0  # commands run, for the benchmark and the tests

    @classmethod
    def from_config(cls, config: Config) -> SlurmReader | None:
        if config.slurm is None or not config.slurm.enabled:
            return None
        return cls(config.slurm, {h.name: h.slurm_node for h in config.hosts if h.slurm_node})

    def commands(self) -> Commands:
        def tool(name: str) -> str:
            return str(Path(self.settings.bin_dir) / name) if self.settings.bin_dir else name

        return (
            [tool("squeue"), "--json"],
            [tool("sinfo"), "--json"],
            [tool("scontrol"), "show", "reservation", "-o"],
        )

    async def read(self) -> SlurmView:
        """One reading of the cluster; on failure the last good parts with the reason."""
        squeue, sinfo, scontrol = self.commands()
        answers = await asyncio.gather(*(self._run(argv) for argv in (squeue, sinfo, scontrol)))
        failed = next((error for _, error in answers if error), None)
        if failed is not None:
            self.view = replace(self.view, error=failed)
            return self.view
        jobs_text, nodes_text, resv_text = (out for out, _ in answers)
        try:
            view = SlurmView(
                jobs=tuple(parse.squeue_jobs(jobs_text)),
                nodes=parse.sinfo_nodes(nodes_text),
                reservations=tuple(parse.reservations(resv_text)),
                node_of=self.node_of,
                read_at=time.time(),
            )
        except parse.SlurmParseError as exc:
            view = replace(self.view, error=str(exc))
        self.view = view
        return view

    async def follow(self, publish: Callable[[SlurmView], None]) -> None:
        """Read every ``refresh_s`` until cancelled, handing each view to ``publish``."""
        while True:
            publish(await self.read())
            await asyncio.sleep(self.settings.refresh_s)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.settings.conf:
            env["SLURM_CONF"] = self.settings.conf
        return env

    async def _run(self, argv: list[str]) -> tuple[str, str | None]:
        """The command's output, or why there is none."""
        self.reads += 1
        what = " ".join(argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self._env(),
            )  # fmt: skip
        except FileNotFoundError:
            return "", f"{argv[0]} is not installed on this machine (not found on PATH; [slurm] bin_dir)"
        except OSError as exc:
            return "", f"cannot run {argv[0]}: {exc.strerror}"
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                out, err = await proc.communicate()
        except TimeoutError:
            await end_child(proc, term_s=0)
            return "", f"{what} gave no answer within {self.settings.timeout_s:.0f}s"
        except asyncio.CancelledError:
            await end_child(proc, term_s=0)  # bounded: closing the dashboard cancels a read in flight
            raise
        if proc.returncode != 0:
            said = err.decode("utf-8", "replace").strip() or out.decode("utf-8", "replace").strip()
            return "", f"{what} exited {proc.returncode}: {said[:300] or 'no message'}"
        return out.decode("utf-8", "replace"), None
