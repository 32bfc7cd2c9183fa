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
import time
from collections.abc import Callable
from dataclasses import replace

from gputui.config import Config, Slurm
from gputui.slurm import command, parse
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
        return (
            [command.tool(self.settings, "squeue"), "--json"],
            [command.tool(self.settings, "sinfo"), "--json"],
            [command.tool(self.settings, "scontrol"), "show", "reservation", "-o"],
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

    async def _run(self, argv: list[str]) -> tuple[str, str | None]:
        """The command's output, or why there is none."""
        self.reads += 1
        ran = await command.run(argv, self.settings.timeout_s, self.settings)
        if isinstance(ran, str):
            return "", ran
        status, out, err = ran
        if status != 0:
            words = err.strip() or out.strip()
            return "", f"{' '.join(argv)} exited {status}: {words[:300] or 'no message'}"
        return out, None
