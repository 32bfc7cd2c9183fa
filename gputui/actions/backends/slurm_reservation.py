"""Slurm reservations as gputui makes them (backend slurmctld's reserve-node and
release-node) and finds them again (read with the dashboard's reader of
``scontrol show reservation -o``, gputui/slurm/parse.py, so the preview and
the node's line on screen agree). Nothing here runs anything: the backend
runs the argument lists built here, never through a shell.

The name: gputui's reservation of node ``N`` is ``gputui-N`` (characters
Slurm would not take in a name, such as a hostlist's brackets, become
``_``), so that release-node, a second dashboard and the overview find the
reservation again by name alone, and a reservation someone made by hand
under another name is never touched.

What Slurm 22.05 takes, as tried against its slurmctld:

- ``Users=`` must name users the controller knows (``getpwnam`` there), else
  "Invalid user id"; a team name is refused the same way;
- there is no ``Comment=`` ("Unknown parameter"): the reason and ticket stay
  in gputui's audit log;
- ``TRES=`` takes CPU, Node, License and BB, not GPUs: a single GPU cannot be
  reserved in Slurm, so the host's ledger holds it;
- ``Duration=UNLIMITED`` is a year; ``EndTime=`` is read to the second in
  scontrol's local time; an ended reservation is purged by slurmctld's
  background loop, up to about half a minute after its EndTime;
- a reservation is made on a node that never registered (UNKNOWN) too.
"""

from __future__ import annotations

import math
import re
import time

from gputui.slurm.model import SlurmReservation

PREFIX = "gputui-"
# IGNORE_JOBS: the reservation starts now even while jobs run on the node (they
# run to their end; no one else's job starts there). MAINT is not set: it would
# show the node as under maintenance and count the hold as down time in accounting.
FLAGS = "IGNORE_JOBS"
NO_END = "Duration=UNLIMITED"
NONE = "none"
# One or more user names, comma-separated: what Users= takes, and nothing that could read as another key.
SLURM_USERS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:,[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")


def gputui_reservation_name(node: str) -> str:
    """The name gputui gives its reservation of ``node`` (a NodeName, or a hostlist)."""
    return PREFIX + _NOT_IN_NAME.sub("_", node)


def find(reservations: list[SlurmReservation], name: str) -> SlurmReservation | None:
    return next((r for r in reservations if r.name == name), None)


def reservation_words(found: SlurmReservation | None) -> str:
    """What a preview is judged against and the operator reads: everything someone
    could change about the reservation, not its State (that moves with the clock)."""
    if found is None:
        return NONE
    return f"{found.name} on {found.nodes} for {found.users or '-'} from {found.start} to {found.end}, flags {found.flags}"


def show_argv(scontrol: str) -> list[str]:
    return [scontrol, "show", "reservation", "-o"]


def end_arg(until: float | None) -> str:
    """``EndTime=`` to the second (rounded up, in this process's local time, as
    scontrol reads it), or no end: a year, Slurm's UNLIMITED."""
    if until is None:
        return NO_END
    return "EndTime=" + time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(math.ceil(until)))


def create_argv(scontrol: str, node: str, users: str, until: float | None) -> list[str]:
    return [
        scontrol,
        "create",
        "reservation",
        f"ReservationName={gputui_reservation_name(node)}",
        "StartTime=now",
        end_arg(until),
        f"Nodes={node}",
        f"Users={users}",
        f"Flags={FLAGS}",
    ]


def delete_argv(scontrol: str, node: str) -> list[str]:
    return [scontrol, "delete", f"ReservationName={gputui_reservation_name(node)}"]
