"""``gputui reserve|release|drain|undrain|kill|drain-node|resume-node|reserve-node|release-node`` and
``gputui audit``: the guard for scripts and for operators without the TUI.

Exit status: 0 done (or dry run shown), 1 refused, cancelled, in conflict or
failed (the reason on stderr), 2 a usage or config error, 130 interrupted
(Ctrl-C) while the hosts were applying: what they did is unknown. Ctrl-C or
the end of input at a prompt cancels: exit 1, and once there is a preview
the cancel is audited like any other. ``audit verify``: 0 intact, 1 damaged
or unreadable, 3 no log at that path; ``audit list``: 0, 1 unreadable, 3 no
log.

The hosts are asked from one event loop (``asyncio.Runner``), but the
prompts are read between its runs, with Python's own Ctrl-C handling: a
blocking read inside the loop would swallow the first Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from gputui import config as cfg
from gputui.actions.audit import AuditError, AuditLog
from gputui.actions.guard import INTERRUPTED_WHILE_APPLYING, Guard, Plan
from gputui.actions.identity import key_fingerprints
from gputui.actions.model import ActionRequest, Operator
from gputui.actions.render import outcome_lines, plan_lines, when
from gputui.actions.targets import TargetError, parse_targets
from gputui.actions.until import parse_until
from gputui.config import ACTION_NAMES
from gputui.protocol import MAX_TERM_WAIT_S, words_problem

HELP = {
    "reserve": "hold GPUs for a user or team, until a time",
    "release": "end a reservation",
    "drain": "take GPUs out of service",
    "undrain": "return drained GPUs to service",
    "kill": "stop a GPU process: SIGTERM, and SIGKILL only with --kill-after",
    "drain-node": "drain a whole host (Slurm: scontrol State=DRAIN)",
    "resume-node": "return a drained host to service (Slurm: State=RESUME)",
    "reserve-node": "hold a whole Slurm node for a user: a Slurm reservation (backend slurmctld)",
    "release-node": "delete gputui's Slurm reservation of a node (backend slurmctld)",
}
INTERRUPTED = 130
NO_LOG = 3


class Unanswered(Exception):
    """A prompt got Ctrl-C or the end of input instead of an answer; ``str()`` says which."""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name in ACTION_NAMES:
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        p.add_argument("targets", nargs="+", metavar="TARGET", help="HOST, HOST:0,1, HOST:GPU-uuid or HOST:pid=PID")
        p.add_argument("--config", dest="action_config", type=Path, help="config file (default as for gputui)")
        p.add_argument("--reason", help="why (asked for when not given; required with --yes)")
        p.add_argument("--ticket", help="ticket id for the record")
        p.add_argument("--dry-run", action="store_true", help="show the preview, change nothing")
        p.add_argument("--yes", action="store_true", help="skip the confirmation (only with --reason)")
        p.add_argument("--force", action="store_true", help="go past the blast-radius limit")
        p.add_argument("--read-only", action="store_true", help="refuse every action, whatever the config says")
        if name == "reserve-node":
            p.add_argument("--for", dest="holder", help="Slurm user(s) the node is held for, as a,b (default: you)")
            p.add_argument("--until", help="end of the reservation: a duration (2h, 30m, 1d) or a local time (default: none)")
        if name == "reserve":
            p.add_argument("--for", dest="holder", help="user or team the GPUs are held for (default: you)")
            p.add_argument("--until", help="end of the hold: a duration (2h, 30m, 1d) or a local time (2026-12-01 08:00)")
        if name == "kill":
            p.add_argument(
                "--grace",
                type=grace_seconds,
                help=f"seconds to wait for SIGTERM to work, 0 to {MAX_TERM_WAIT_S:g} (default from config); "
                "0 sends SIGKILL at once and needs --kill-after",
            )
            p.add_argument("--kill-after", action="store_true", help="send SIGKILL when SIGTERM was not honoured")
    audit = sub.add_parser("audit", help="the local audit log: verify its chain or list it")
    audit.add_argument("audit_command", choices=("verify", "list"), metavar="verify|list")
    audit.add_argument("--config", dest="action_config", type=Path, help="config file (default as for gputui)")
    audit.add_argument("-n", type=at_least_one, default=20, help="list: how many of the latest records (default 20)")


def grace_seconds(text: str) -> float:
    """``--grace``: a finite number of seconds the hosts accept (argparse names the option)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_TERM_WAIT_S:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to {MAX_TERM_WAIT_S:g}, got {text!r}")
    return value


def at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of records, 1 or more, got {text!r}")
    return value


def run(args: argparse.Namespace, config_path: Path | None) -> int:
    path = args.action_config or config_path
    try:
        if path is None and args.command == "audit" and "GPUTUI_CONFIG" not in os.environ and not cfg.default_path().exists():
            # No config of one's own: the log is where the defaults put it.
            config = cfg.parse({}, "the defaults")
        else:
            config = cfg.load(path or cfg.default_path())
    except cfg.ConfigError as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    audit = AuditLog(Path(config.actions.audit_log).expanduser())
    if args.command == "audit":
        return _audit(args, audit)
    try:
        request = _request(args, config, sys.stdin)
    except (TargetError, ValueError) as exc:
        print(f"gputui {args.command}: {exc}", file=sys.stderr)
        return 2
    except Unanswered as exc:
        print(f"gputui {args.command}: cancelled ({exc} at the reason prompt); nothing was done", file=sys.stderr)
        return 1
    if request is None:
        return 2
    read_only = args.read_only or getattr(args, "ui_read_only", False)
    with asyncio.Runner() as runner:
        try:
            operator = Operator.local(runner.run(key_fingerprints(config)))
        except KeyboardInterrupt:
            print(f"\ngputui {args.command}: cancelled (Ctrl-C) before any host was asked; nothing was done", file=sys.stderr)
            return 1
        guard = Guard(config, operator, audit, read_only=read_only)
        try:
            return _guarded(runner, guard, request, args, sys.stdin, sys.stdout)
        except AuditError as exc:
            print(f"gputui {args.command}: {exc}; nothing more was done", file=sys.stderr)
            return 1


def _request(args: argparse.Namespace, config: cfg.Config, inp: TextIO) -> ActionRequest | None:
    """The request from the arguments (the reason asked for when not given); None after a usage error."""
    targets = parse_targets(args.command, args.targets, {h.name for h in config.hosts})
    if args.yes and not (args.reason or "").strip():
        print(f"gputui {args.command}: --yes needs --reason: say why, for the record", file=sys.stderr)
        return None
    until = parse_until(args.until) if getattr(args, "until", None) else None
    grace, kill_after = getattr(args, "grace", None), getattr(args, "kill_after", False)
    if grace == 0 and not kill_after:
        raise ValueError("--grace 0 means SIGKILL at once, so it needs --kill-after; or give SIGTERM some seconds")
    reason = args.reason if args.reason is not None else ask("reason (for the audit log): ", inp)
    problem = words_problem(reason, args.ticket)
    if problem:
        print(f"gputui {args.command}: {problem}; nothing was done", file=sys.stderr)
        return None
    return ActionRequest(
        args.command,
        targets,
        reason,
        ticket=args.ticket,
        holder=getattr(args, "holder", None),
        until=until,
        kill_after=kill_after,
        term_wait_s=grace,
        force=args.force,
    )


def ask(prompt: str, inp: TextIO) -> str:
    """One line typed in answer to ``prompt`` (on stderr); Unanswered on Ctrl-C or the end of input."""
    try:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = inp.readline()
    except KeyboardInterrupt:
        line, why = "", "Ctrl-C"
    else:
        why = "end of input"
    if not line:
        sys.stderr.write("\n")
        raise Unanswered(why)
    return line.rstrip("\n")


def _guarded(
    runner: asyncio.Runner, guard: Guard, request: ActionRequest, args: argparse.Namespace, inp: TextIO, out: TextIO
) -> int:
    if request.term_wait_s is None and request.kind == "kill":
        request.term_wait_s = guard.config.actions.term_wait_s
    try:
        plan = runner.run(guard.prepare(request))
    except KeyboardInterrupt:
        cancelled = guard.cancel(Plan(request, guard.operator), "Ctrl-C while the hosts were previewing")
        print(f"\ngputui {request.kind}: {cancelled.message} (audit {cancelled.audit_id})", file=sys.stderr)
        return 1
    print("\n".join(plan_lines(plan)), file=out)
    if plan.refused is not None:
        print(f"gputui {request.kind}: refused: {plan.refused} (audit {plan.audit_id})", file=sys.stderr)
        return 1
    if args.dry_run:
        print("\n".join(outcome_lines(guard.dry_run(plan))), file=out)
        return 0
    why = None if args.yes else _unconfirmed(plan, inp)
    if why is not None:
        cancelled = guard.cancel(plan, why)
        print(f"gputui {request.kind}: {cancelled.message} (audit {cancelled.audit_id})", file=sys.stderr)
        return 1
    try:
        outcome = runner.run(guard.apply(plan))
    except KeyboardInterrupt:
        print(f"\ngputui {request.kind}: {INTERRUPTED_WHILE_APPLYING}", file=sys.stderr)
        return INTERRUPTED
    print("\n".join(outcome_lines(outcome)), file=out)
    if not outcome.ok:
        print(f"gputui {request.kind}: {outcome.message} (audit {outcome.audit_id})", file=sys.stderr)
        return 1
    return 0


def _unconfirmed(plan: Plan, inp: TextIO) -> str | None:
    """None when the operator confirmed; else why not, for the record."""
    word = plan.confirmation
    try:
        answer = ask(f"type {word!r} to go ahead: " if word else "go ahead? [y/N] ", inp).strip()
    except Unanswered as exc:
        return f"{exc} at the confirmation"
    if (word is not None and answer == word) or (word is None and answer.lower() in ("y", "yes")):
        return None
    return f"confirmation was {answer!r}"


def _audit(args: argparse.Namespace, audit: AuditLog) -> int:
    if args.audit_command == "verify":
        verdict = audit.verify()
        print(verdict.report(), file=sys.stdout if verdict.ok and not verdict.missing else sys.stderr)
        return NO_LOG if verdict.missing else 0 if verdict.ok else 1
    try:
        records = audit.load()
    except AuditError as exc:
        print(f"gputui audit list: {exc}", file=sys.stderr)
        return 1
    if records is None:
        print(f"gputui audit list: no audit log at {audit.path}: nothing has been recorded there", file=sys.stderr)
        return NO_LOG
    for r in records[-args.n :]:
        print(list_line(r))
    return 0


def list_line(r: dict[str, Any]) -> str:
    """One record for ``audit list``; any field may be missing or of the wrong type."""
    t, op, targets = r.get("t"), r.get("operator"), r.get("targets")
    stamp = when(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else "?"
    who = _word(op.get("user")) if isinstance(op, dict) else "?"
    where = " ".join(_word(x) for x in targets) if isinstance(targets, list) else _word(targets)
    what = f"{_word(r.get('status')):<9} {_word(r.get('action'))} {where}"
    return f"{_word(r.get('id')):>14}  {stamp}  {who:<10} {what}: {r.get('reason')!r}"


def _word(value: Any) -> str:
    return "?" if value is None or value == "" else str(value)
