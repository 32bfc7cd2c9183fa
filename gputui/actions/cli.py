"""``gputui reserve|release|drain|undrain|kill|drain-node|resume-node`` and
``gputui audit``: the guard for scripts and for operators without the TUI.

Exit status: 0 done (or dry run shown), 1 refused, cancelled, in conflict or
failed (the reason on stderr), 2 a usage or config error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
import time
from pathlib import Path
from typing import TextIO

from gputui import config as cfg
from gputui.actions.audit import AuditError, AuditLog
from gputui.actions.guard import Guard
from gputui.actions.identity import key_fingerprints
from gputui.actions.model import ActionRequest, Operator
from gputui.actions.render import outcome_lines, plan_lines, when
from gputui.actions.targets import TargetError, parse_targets
from gputui.config import ACTION_NAMES

HELP = {
    "reserve": "hold GPUs for a user or team, until a time",
    "release": "end a reservation",
    "drain": "take GPUs out of service",
    "undrain": "return drained GPUs to service",
    "kill": "stop a GPU process: SIGTERM, and SIGKILL only with --kill-after",
    "drain-node": "drain a whole host (Slurm: scontrol State=DRAIN)",
    "resume-node": "return a drained host to service (Slurm: State=RESUME)",
}
DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


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
        if name == "reserve":
            p.add_argument("--for", dest="holder", help="user or team the GPUs are held for (default: you)")
            p.add_argument("--until", help="end of the hold: a duration (2h, 30m, 1d) or a local time (2026-12-01 08:00)")
        if name == "kill":
            p.add_argument("--grace", type=float, help="seconds to wait for SIGTERM to work (default from config)")
            p.add_argument("--kill-after", action="store_true", help="send SIGKILL when SIGTERM was not honoured")
    audit = sub.add_parser("audit", help="the local audit log: verify its chain or list it")
    audit.add_argument("audit_command", choices=("verify", "list"))
    audit.add_argument("--config", dest="action_config", type=Path, help="config file (default as for gputui)")
    audit.add_argument("-n", type=int, default=20, help="list: how many of the latest records (default 20)")


def parse_until(text: str, now: float | None = None) -> float:
    now = time.time() if now is None else now
    m = DURATION.match(text.strip())
    if m:
        return now + float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--until {text!r}: expected a duration (2h, 30m, 1d) or a time (2026-12-01 08:00)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    stamp = moment.timestamp()
    if stamp <= now:
        raise ValueError(f"--until {text!r} is in the past")
    return stamp


def run(args: argparse.Namespace, config_path: Path | None) -> int:
    try:
        config = cfg.load(args.action_config or config_path or cfg.default_path())
    except cfg.ConfigError as exc:
        print(f"gputui: {exc}", file=sys.stderr)
        return 2
    audit = AuditLog(Path(config.actions.audit_log).expanduser())
    if args.command == "audit":
        return _audit(args, audit)
    try:
        request = _request(args, config)
    except (TargetError, ValueError) as exc:
        print(f"gputui {args.command}: {exc}", file=sys.stderr)
        return 2
    if request is None:
        return 2
    operator = Operator.local(asyncio.run(key_fingerprints(config)))
    guard = Guard(config, operator, audit, read_only=args.read_only or getattr(args, "ui_read_only", False))
    try:
        return asyncio.run(_guarded(guard, request, args, sys.stdin, sys.stdout))
    except AuditError as exc:
        print(f"gputui {args.command}: {exc}; nothing more was done", file=sys.stderr)
        return 1


def _request(args: argparse.Namespace, config: cfg.Config) -> ActionRequest | None:
    targets = parse_targets(args.command, args.targets, {h.name for h in config.hosts})
    if args.yes and not (args.reason or "").strip():
        print(f"gputui {args.command}: --yes needs --reason: say why, for the record", file=sys.stderr)
        return None
    reason = args.reason
    if reason is None:
        sys.stderr.write("reason (for the audit log): ")
        sys.stderr.flush()
        reason = sys.stdin.readline().rstrip("\n")
    if not reason.strip():
        print(f"gputui {args.command}: a reason is required", file=sys.stderr)
        return None
    until = parse_until(args.until) if getattr(args, "until", None) else None
    return ActionRequest(
        args.command,
        targets,
        reason,
        ticket=args.ticket,
        holder=getattr(args, "holder", None),
        until=until,
        kill_after=getattr(args, "kill_after", False),
        term_wait_s=getattr(args, "grace", None),
        force=args.force,
    )


async def _guarded(guard: Guard, request: ActionRequest, args: argparse.Namespace, inp: TextIO, out: TextIO) -> int:
    if request.term_wait_s is None and request.kind == "kill":
        request.term_wait_s = guard.config.actions.term_wait_s
    plan = await guard.prepare(request)
    print("\n".join(plan_lines(plan)), file=out)
    if plan.refused is not None:
        print(f"gputui {request.kind}: refused: {plan.refused} (audit {plan.audit_id})", file=sys.stderr)
        return 1
    if args.dry_run:
        outcome = guard.dry_run(plan)
        print("\n".join(outcome_lines(outcome)), file=out)
        return 0
    if not args.yes:
        word = plan.confirmation
        ask = f"type {word!r} to go ahead: " if word else "go ahead? [y/N] "
        sys.stderr.write(ask)
        sys.stderr.flush()
        answer = inp.readline().strip()
        if (word is not None and answer != word) or (word is None and answer.lower() not in ("y", "yes")):
            outcome = guard.cancel(plan, f"confirmation was {answer!r}")
            print(f"gputui {request.kind}: {outcome.message} (audit {outcome.audit_id})", file=sys.stderr)
            return 1
    outcome = await guard.apply(plan)
    print("\n".join(outcome_lines(outcome)), file=out)
    if not outcome.ok:
        print(f"gputui {request.kind}: {outcome.message} (audit {outcome.audit_id})", file=sys.stderr)
        return 1
    return 0


def _audit(args: argparse.Namespace, audit: AuditLog) -> int:
    if args.audit_command == "verify":
        verdict = audit.verify()
        print(verdict.report(), file=sys.stdout if verdict.ok else sys.stderr)
        return 0 if verdict.ok else 1
    for r in audit.records()[-args.n :]:
        t = when(r.get("t")) if isinstance(r.get("t"), (int, float)) else "?"
        who = (r.get("operator") or {}).get("user", "?")
        targets = " ".join(r.get("targets") or [])
        what = f"{r.get('status', '?'):<9} {r.get('action', '?')} {targets}"
        print(f"{r.get('id', '?'):>14}  {t}  {who:<10} {what}: {r.get('reason')!r}")
    return 0
