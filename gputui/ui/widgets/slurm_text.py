"""How a host's Slurm node reads on screen: its state and reason, its reservations,
and whether that reading is current, in the host screen's title and the overview."""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text

from gputui.slurm.model import SlurmNode, SlurmView
from gputui.ui.widgets.palette import Palette

TROUBLE = ("drain", "down", "fail")  # words of a node that takes no work


def node_style(node: SlurmNode, pal: Palette) -> Style:
    if node.state.startswith("down") or "fail" in node.state:
        return pal.bad
    if any(word in node.state for word in TROUBLE) or "not responding" in node.state:
        return pal.warn
    return pal.text


def slurm_words(view: SlurmView | None, host: str, pal: Palette) -> Text:
    """``   Slurm drained: fan noise (root, 2026-12-05 02:41); reservation ...``; empty
    where Slurm is not read or does not know the host's node."""
    text = Text()
    if view is None:
        return text
    node = view.node(host)
    if node is not None:
        text.append("   Slurm ", pal.dim)
        text.append(node.words(), node_style(node, pal))
    for reservation in view.reservations_on(host):
        text.append(f"; {reservation.words()}", pal.accent)
    if view.error:
        text.append(f"   Slurm unreadable: {view.error}", pal.bad)
    return text


def slurm_jobs_given(view: SlurmView | None, host: str | None, gpu: int | None) -> list[str]:
    """``job 12 train (alice), partition gpu, 5m of 1.0h on GPU 0``: the jobs Slurm gave
    ``gpu`` (every GPU of the host when None), for triage's affected list."""
    if view is None or host is None:
        return []
    now = time.time()
    node = view.node_name(host)
    out = []
    for job in view.jobs_on(host):
        gpus = [i for i in job.gpus.get(node, ()) if gpu is None or i == gpu]
        if gpus:
            out.append(f"{job.words(now)} on GPU {','.join(map(str, gpus))}")
    return out
