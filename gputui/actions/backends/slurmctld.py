"""The ``control-plane`` flavour for Slurm (backend ``slurmctld``): drain-node and
resume-node through the site's Slurm controller, run from the dashboard's machine.

No agent is involved and no GPU is touched: the preview asks
``scontrol show node -o NODE`` for the node's state and reason and shows the
exact ``scontrol update`` that would run; the apply reads the node again,
refuses as a conflict when someone drained, resumed or re-reasoned it since
the preview (a job starting or ending is not such a change), then runs it.
``scontrol`` runs from argument lists, never a shell, with this process's
environment (``SLURM_CONF`` as usual). Whatever goes wrong (scontrol missing,
refusing, too slow) is a failed answer carrying scontrol's own words, which
the guard audits like any other; nothing raises.

GPU-level actions (reserve, release, drain, undrain, kill) are refused at the
preview: Slurm's controller knows nodes, not which GPU a hold is on.
"""

from __future__ import annotations

import asyncio
import re
import shlex

from gputui.actions.model import HostAnswer, HostRequest, NodeState
from gputui.child_process import end_child
from gputui.config import Config, Host
from gputui.protocol import NODE_ACTIONS, scontrol_update_argv

SCONTROL = "scontrol"
NODE_ONLY = (
    "the slurmctld backend acts on whole nodes (drain-node, resume-node) through Slurm's controller; "
    "use backend ledger, nvml or slurm for single GPUs and processes"
)
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
    def __init__(self, config: Config, scontrol: str = SCONTROL) -> None:
        self.config = config
        self.scontrol = scontrol

    async def preview(self, host: Host, request: HostRequest, timeout: float) -> HostAnswer:
        if request.action not in NODE_ACTIONS:
            return HostAnswer.failure(NODE_ONLY, "preview")
        name = node_name(host, request)
        node = await self._show(name, timeout)
        if isinstance(node, str):
            return _failed(host, "preview", node)
        argv = self._argv(request, name)
        draining = request.action == "drain-node"
        drained = bool(admin_flags(node) & {"DRAIN", "DRAINING", "DRAINED"})
        notes = [
            f"backend slurmctld: this machine runs scontrol against Slurm's controller "
            f"(node {name} is {node.state}{f', reason: {node.reason}' if node.reason else ''}); "
            "no agent is asked and no GPU or process is touched"
        ]
        if draining and drained:
            notes.append("Slurm already has the node drained: its reason is replaced")
        elif not draining and not drained:
            notes.append("Slurm does not have the node drained; it is asked anyway")
        if draining:
            notes.append("running jobs keep running; a drained node takes no new jobs")
        step = f"run: {shlex.join(argv[:4])}" + (" Reason=<the reason>" if draining else "")
        return HostAnswer(ok=True, phase="preview", host=host.name, node=node, commands=[argv], steps=[step], notes=notes)

    async def apply(self, host: Host, request: HostRequest, preview: HostAnswer, timeout: float) -> HostAnswer:
        if request.action not in NODE_ACTIONS:
            return HostAnswer.failure(NODE_ONLY, "apply")
        if preview.node is None:
            return _failed(host, "apply", "no preview of the node to check against: preview first")
        name = node_name(host, request)
        now = await self._show(name, timeout)
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
        after = await self._show(name, timeout)
        if isinstance(after, NodeState):
            answer.node = after
            answer.notes.append(f"Slurm now has node {name} as {_words(after)}")
        return answer

    # -- scontrol ---------------------------------------------------------------
    def _argv(self, request: HostRequest, name: str) -> list[str]:
        argv = scontrol_update_argv(request.action, name, request.reason)
        return [self.scontrol, *argv[1:]]

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

    async def _run(self, argv: list[str], timeout: float) -> tuple[int, str, str] | str:
        """``(status, stdout, stderr)``, or why it could not be run or did not finish."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except FileNotFoundError:
            return f"{argv[0]} is not installed on this machine (not found on PATH): the slurmctld backend runs it here"
        except OSError as exc:
            return f"cannot run {argv[0]}: {exc.strerror}"
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            await _stop(proc)
            what = shlex.join(argv[:4])
            return f"{what} gave no answer within {timeout:.0f}s; Slurm may or may not have done it: look before retrying"
        except asyncio.CancelledError:
            await _stop(proc)
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def node_name(host: Host, request: HostRequest) -> str:
    return request.slurm_node or host.slurm_node or host.name


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


def fingerprint(node: NodeState) -> tuple[frozenset[str], str | None]:
    """What a preview is judged against: the flags someone sets and the reason (with its stamp)."""
    return frozenset(admin_flags(node)), node.reason


def _words(node: NodeState) -> str:
    return node.state + (f", reason: {node.reason}" if node.reason else ", no reason")


def _failed(host: Host, phase: str, error: str) -> HostAnswer:
    return HostAnswer(ok=False, phase=phase, host=host.name, error=error)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    await end_child(proc, term_s=0)
