"""The ``control-plane`` flavour for Slurm (backend ``slurmctld``): drain-node,
resume-node, reserve-node and release-node through the site's Slurm
controller, run from the dashboard's machine.

For a whole node no agent is involved and no GPU is touched: the preview asks
``scontrol show node -o NODE`` for the node's state and reason and shows the
exact ``scontrol update`` that would run; the apply reads the node again,
refuses as a conflict when someone drained, resumed or re-reasoned it since
the preview (a job starting or ending is not such a change), then runs it.
``scontrol`` runs from argument lists, never a shell, with this process's
environment (``SLURM_CONF`` as usual). Whatever goes wrong (scontrol missing,
refusing, too slow) is a failed answer carrying scontrol's own words, which
the guard audits like any other; nothing raises.

reserve-node creates a Slurm reservation of the whole node under a name
gputui finds again (:mod:`gputui.actions.backends.slurm_reservation`) and
release-node deletes it; their preview also reads that reservation, and an
apply is a conflict when it appeared, went or changed since.

A single GPU cannot be held by a Slurm 22.05 reservation (its TRES= takes CPU,
Node, License and BB), so reserve and release of GPUs go to the host's ledger
through its agent (backend ledger), and the preview says so. drain, undrain
and kill are refused at the preview: Slurm's controller knows nodes, not GPUs.
"""

from __future__ import annotations

import re
import shlex

from gputui import registry
from gputui.actions.backends import slurm_reservation as resv
from gputui.actions.backends.base import ActionBackend
from gputui.actions.model import HostAnswer, HostRequest, NodeState
from gputui.config import Config, Host
from gputui.protocol import CONTROL_PLANE_ACTIONS, NODE_ACTIONS, scontrol_update_argv
from gputui.slurm import command
from gputui.slurm.command import Ran
from gputui.slurm.parse import reservations

SCONTROL = "scontrol"
NODE_ONLY = (
    "the slurmctld backend acts on whole nodes (drain-node, resume-node, reserve-node, release-node) "
    "through Slurm's controller, and holds single GPUs (reserve, release) in the host's ledger; "
    "use backend ledger, nvml or slurm for drain, undrain and kill"
)
LEDGER_HELD = ("reserve", "release")
SINGLE_GPU = "Slurm 22.05 reservations cannot hold single GPUs (TRES= takes CPU, Node, License, BB): the host's ledger holds it"
NO_COMMENT = "Slurm 22.05 reservations have no comment field: the reason and ticket are kept in gputui's audit log only"
# The parts of Slurm's State= that someone (or Slurm, for a failed node) set on
# purpose; the rest (IDLE, MIXED, ALLOCATED, NOT_RESPONDING...) moves with jobs and pings.
ADMIN_FLAGS = frozenset({"DRAIN", "DRAINING", "DRAINED", "DOWN", "FAIL", "MAINT", "REBOOT_REQUESTED", "REBOOT_ISSUED"})
_STATE = re.compile(r"(?:^|\s)State=(\S+)")
# Reason=<text> [<user>@<time>]: the stamp changes whenever the reason is set, even to the same text.
_REASON = re.compile(r"\sReason=(.*)$")
_STAMPED = re.compile(r"^.*? \[[^\[\]@\s]*@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\]")


def backend(config: Config) -> SlurmctldBackend:
    return SlurmctldBackend(config)


class SlurmctldBackend:
    def __init__(self, config: Config, scontrol: str | None = None) -> None:
        self.config = config
        self.scontrol = scontrol or command.tool(config.slurm, SCONTROL)  # [slurm] bin_dir, as the reader
        self._ledger: ActionBackend | None = None

    async def preview(self, host: Host, request: HostRequest, timeout: float) -> HostAnswer:
        if request.action in LEDGER_HELD:
            return await self._by_ledger(host, request, None, timeout)
        if request.action not in NODE_ACTIONS:
            return HostAnswer.failure(NODE_ONLY, "preview")
        name = node_name(host, request)
        node = await self._look(request, name, timeout)
        if isinstance(node, str):
            return _failed(host, "preview", node)
        if request.action in CONTROL_PLANE_ACTIONS:
            return reservation_preview(host, request, name, node, self.scontrol)
        argv = self._argv(request, name)
        draining = request.action == "drain-node"
        drained = bool(admin_flags(node) & {"DRAIN", "DRAINING", "DRAINED"})
        notes = [_where(name, node)]
        if draining and drained:
            notes.append("Slurm already has the node drained: its reason is replaced")
        elif not draining and not drained:
            notes.append("Slurm does not have the node drained; it is asked anyway")
        if draining:
            notes.append("running jobs keep running; a drained node takes no new jobs")
        step = f"run: {shlex.join(argv[:4])}" + (" Reason=<the reason>" if draining else "")
        return HostAnswer(ok=True, phase="preview", host=host.name, node=node, commands=[argv], steps=[step], notes=notes)

    async def apply(self, host: Host, request: HostRequest, preview: HostAnswer, timeout: float) -> HostAnswer:
        if request.action in LEDGER_HELD:
            return await self._by_ledger(host, request, preview, timeout)
        if request.action not in NODE_ACTIONS:
            return HostAnswer.failure(NODE_ONLY, "apply")
        if preview.node is None:
            return _failed(host, "apply", "no preview of the node to check against: preview first")
        name = node_name(host, request)
        now = await self._look(request, name, timeout)
        if isinstance(now, str):
            return _failed(host, "apply", now)
        if fingerprint(now) != fingerprint(preview.node):
            was, is_ = _words(preview.node), _words(now)
            why = f"Slurm's node {name} changed since the preview (it was {was}, it is {is_}): preview again"
            return HostAnswer(ok=False, phase="apply", host=host.name, error=why, conflict=True, node=now)
        argv = self._argv(request, name)
        said = await self._run(argv, timeout)
        if isinstance(said, tuple):
            code, out, err = said
            if code == 0:
                answer = HostAnswer(ok=True, phase="apply", host=host.name, commands=[argv])
                answer.done.append(f"ran {shlex.join(argv[:4])}: ok" + (f" ({out.strip()})" if out.strip() else ""))
            else:
                error = err.strip() or out.strip() or f"scontrol exited with status {code}"
                answer = HostAnswer(ok=False, phase="apply", host=host.name, error=error, commands=[argv])
        else:  # not run, or no answer in time: what Slurm has now is looked at only when it answered
            return HostAnswer(ok=False, phase="apply", host=host.name, error=said, commands=[argv])
        after = await self._look(request, name, timeout)
        if isinstance(after, NodeState):
            answer.node = after
            answer.notes.append(f"Slurm now has node {name} as {_words(after)}")
        return answer

    async def _by_ledger(self, host: Host, request: HostRequest, preview: HostAnswer | None, timeout: float) -> HostAnswer:
        """A single GPU's reserve or release, which no Slurm reservation can hold:
        handed to the ledger backend (the host's agent), whose answer, or its
        failure to reach the host, is the answer, with the reason in a note."""
        if self._ledger is None:
            self._ledger = registry.load(registry.backend_kind("ledger")).backend(self.config)
        held = request.model_copy(update={"backend": "ledger"})
        if preview is None:
            answer = await self._ledger.preview(host, held, timeout)
            answer.notes.insert(0, SINGLE_GPU)
            return answer
        return await self._ledger.apply(host, held, preview, timeout)

    # -- scontrol ---------------------------------------------------------------
    def _argv(self, request: HostRequest, name: str) -> list[str]:
        if request.action == "reserve-node":
            return resv.create_argv(self.scontrol, name, holder_of(request), request.until)
        if request.action == "release-node":
            return resv.delete_argv(self.scontrol, name)
        argv = scontrol_update_argv(request.action, name, request.reason)
        return [self.scontrol, *argv[1:]]

    async def _look(self, request: HostRequest, name: str, timeout: float) -> NodeState | str:
        """The node, and for reserve-node and release-node gputui's reservation of it too."""
        node = await self._show(name, timeout)
        if isinstance(node, str) or request.action not in CONTROL_PLANE_ACTIONS:
            return node
        said = await self._run(resv.show_argv(self.scontrol), timeout)
        if isinstance(said, str):
            return said
        code, out, err = said
        if code != 0:
            return f"scontrol show reservation: {err.strip() or out.strip() or f'exited with status {code}'}"
        found = resv.find(reservations(out), resv.gputui_reservation_name(name))
        return node.model_copy(update={"reservation": resv.reservation_words(found)})

    async def _show(self, name: str, timeout: float) -> NodeState | str:
        """The node as the controller has it, or why not (scontrol's words)."""
        said = await self._run([self.scontrol, "show", "node", "-o", name], timeout)
        if isinstance(said, str):
            return said
        code, out, err = said
        if code != 0:
            return f"scontrol show node {name}: {err.strip() or out.strip() or f'exited with status {code}'}"
        node = parse_node(name, out)
        if node is None:
            return f"scontrol show node {name}: no State= in its answer: {out.strip()[:200]!r}"
        return node

    async def _run(self, argv: list[str], timeout: float) -> Ran | str:
        """``(status, stdout, stderr)``, or why it could not be run or did not finish."""
        said = await command.run(argv, timeout, self.config.slurm)
        if isinstance(said, str) and "gave no answer" in said:
            return f"{said}; Slurm may or may not have done it: look before retrying"
        if isinstance(said, str) and "not installed" in said:
            return f"{said}: the slurmctld backend runs it here"
        return said


def node_name(host: Host, request: HostRequest) -> str:
    return request.slurm_node or host.slurm_node or host.name


def holder_of(request: HostRequest) -> str:
    """Who a reserve-node holds the node for: ``--for``, else the operator."""
    return (request.holder or "").strip() or request.operator.user


def reservation_preview(host: Host, request: HostRequest, name: str, node: NodeState, scontrol: str) -> HostAnswer:
    """reserve-node when gputui has no reservation of the node, release-node when
    it has one; either the other way round is refused here, saying what there is."""
    rname = resv.gputui_reservation_name(name)
    held = node.reservation not in (None, resv.NONE)
    refused = None
    if request.action == "release-node" and not held:
        refused = f"Slurm has no reservation {rname} (gputui's for node {name}): nothing to release"
    elif request.action == "reserve-node" and held:
        refused = f"node {name} already has gputui's reservation {node.reservation}: release-node first"
    elif request.action == "reserve-node" and not resv.SLURM_USERS.fullmatch(holder_of(request)):
        refused = (
            f"--for {holder_of(request)!r} is not a Slurm user name (letters, digits, . _ -; several as a,b): "
            "a reservation's Users= takes users Slurm's controller knows"
        )
    if refused is not None:
        return HostAnswer(ok=False, phase="preview", host=host.name, error=refused, node=node)
    notes = [_where(name, node)]
    if request.action == "reserve-node":
        argv = resv.create_argv(scontrol, name, holder_of(request), request.until)
        step = f"create Slurm reservation {rname} of node {name} for {holder_of(request)}"
        notes += [
            f"Flags={resv.FLAGS}: the reservation starts now even with jobs running on the node; they run to their end, "
            f"and only its users' jobs (sbatch --reservation={rname}) start there. Flags=MAINT is not set: "
            "it would show the node as under maintenance and count the hold as down time",
            f"Users={holder_of(request)}: Slurm refuses a name its controller does not know as a user (Invalid user id)",
            NO_COMMENT,
            "no --until: Slurm's Duration=UNLIMITED, which is a year in Slurm 22.05; release-node ends it sooner"
            if request.until is None
            else f"ends at {argv[5].removeprefix('EndTime=')} (Slurm removes an ended reservation within about half a minute)",
        ]
    else:
        argv = resv.delete_argv(scontrol, name)
        step = f"delete Slurm reservation {rname}: node {name} takes everyone's jobs again (a drain stays)"
    return HostAnswer(ok=True, phase="preview", host=host.name, node=node, commands=[argv], steps=[step], notes=notes)


def parse_node(name: str, text: str) -> NodeState | None:
    """``scontrol show node -o`` (one line a node; several for a hostlist) as one NodeState."""
    lines = [line for line in text.splitlines() if line.startswith("NodeName=")] or [text]
    states, reasons = [], []
    for line in lines:
        state = _STATE.search(line)
        if state is None:
            return None
        states.append(state.group(1))
        reason = _REASON.search(line)
        text = reason.group(1) if reason else ""
        stamped = _STAMPED.match(text)  # fields Slurm may print after the stamp are not the reason
        reasons.append((stamped.group(0) if stamped else text).strip())
    return NodeState(name=name, state=",".join(states), reason=" | ".join(r for r in reasons if r) or None)


def admin_flags(node: NodeState) -> set[str]:
    return {part for state in node.state.split(",") for part in state.split("+")} & ADMIN_FLAGS


def fingerprint(node: NodeState) -> tuple[frozenset[str], str | None, str | None]:
    """What a preview is judged against: the flags someone sets, the reason (with
    its stamp) and, for reserve-node and release-node, gputui's reservation."""
    return frozenset(admin_flags(node)), node.reason, node.reservation


def _words(node: NodeState) -> str:
    words = node.state + (f", reason: {node.reason}" if node.reason else ", no reason")
    return words + (f", gputui's reservation: {node.reservation}" if node.reservation is not None else "")


def _where(name: str, node: NodeState) -> str:
    return (
        f"backend slurmctld: this machine runs scontrol against Slurm's controller (node {name} is {_words(node)}); "
        "no agent is asked and no GPU or process is touched"
    )


def _failed(host: Host, phase: str, error: str) -> HostAnswer:
    return HostAnswer(ok=False, phase=phase, host=host.name, error=error)
