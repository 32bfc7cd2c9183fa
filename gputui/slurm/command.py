"""Running Slurm's commands from the dashboard's machine, for the reader and the
slurmctld action backend alike: argument lists (never a shell), the ``[slurm]``
section's ``conf`` and ``bin_dir``, a timeout that kills, and every failure
returned as words rather than raised, so a Slurm that struggles during an
incident is said on screen and in the audit log, never a crash."""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

from gputui.child_process import end_child
from gputui.config import Slurm

Ran = tuple[int, str, str]  # exit status, stdout, stderr


def tool(settings: Slurm | None, name: str) -> str:
    """``squeue``, ``sinfo`` or ``scontrol``: from ``bin_dir`` when given, else found on PATH."""
    if settings is not None and settings.bin_dir:
        return str(Path(settings.bin_dir) / name)
    return name


def environment(settings: Slurm | None) -> dict[str, str] | None:
    """This process's environment, with SLURM_CONF from ``conf`` when given (None: inherit as is)."""
    if settings is None or not settings.conf:
        return None
    return {**os.environ, "SLURM_CONF": settings.conf}


async def run(argv: list[str], timeout: float, settings: Slurm | None = None) -> Ran | str:
    """``(status, stdout, stderr)``, or why the command could not be run or did not finish."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=environment(settings),
        )  # fmt: skip
    except FileNotFoundError:
        where = "[slurm] bin_dir" if settings is not None and settings.bin_dir else "PATH"
        return f"{argv[0]} is not installed on this machine (not found; {where})"
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror}"
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        await _stop(proc)
        return f"{shlex.join(argv[:4])} gave no answer within {timeout:.0f}s"
    except asyncio.CancelledError:
        await _stop(proc)
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    await end_child(proc, term_s=0)  # bounded: closing the dashboard cancels a read in flight
