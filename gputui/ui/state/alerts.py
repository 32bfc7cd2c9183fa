"""The dashboard's alerts: the health engine evaluated once a tick, and what
the operator said about them.

The app owns one :class:`AlertBoard`. Once a second it asks the engine for
the active alerts (one pass over the store, whatever the number of hosts),
and works out what every reader needs from them: the alerts shown (not
silenced), counts per severity and each host's worst severity. The overview,
the fleet list and the triage screen only read these; none of them walks
the store for alerts on its own.

An acknowledgement ("I am on it") keeps the alert listed, dimmed, until it
clears; a silence hides it until its time ends. Both are recorded: a record
with ``status`` "recorded" in the audit log the guard writes (the config's
``[actions] audit_log``), chained like every other record. The demo has no
config and so no audit log: there they are kept in memory only, and the
triage screen says so.

Why here, in ``gputui/ui/state/`` and not among the widgets: the board is
no widget and draws nothing; the app owns it, and the screens that need it
read it. It stays in the UI rather than in ``gputui/health/``
because the acks and silences are the dashboard operator's, and because
:func:`count_words` and :func:`severity_style` colour its counts with the
theme's palette (``gputui check`` must start without Textual).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text

from gputui.actions.audit import AuditLog
from gputui.actions.model import Operator
from gputui.config import Thresholds
from gputui.fleet.store import FleetStore
from gputui.health.engine import HealthEngine
from gputui.health.model import Alert, Severity
from gputui.ui.widgets.palette import Palette

Evaluate = Callable[[FleetStore], list[Alert]]
Steps = Callable[[FleetStore], Generator[None, None, list[Alert]]]


def severity_style(severity: Severity, pal: Palette) -> Style:
    return {Severity.CRITICAL: pal.bad, Severity.WARNING: pal.warn}.get(severity, pal.accent)


def count_words(counts: dict[Severity, int], pal: Palette, least: Severity = Severity.INFO) -> Text:
    """ "2 critical 3 warning" in the severities' colours; "no alerts" when
    there are none. ``least``: leave out counts below it (the overview's
    crowded title line keeps infos for the triage screen, unless they are all there is)."""
    text = Text()
    shown = [s for s in sorted(Severity, reverse=True) if counts.get(s)]
    if any(s >= least for s in shown):
        shown = [s for s in shown if s >= least]
    for severity in shown:
        if counts.get(severity):
            if text:
                text.append(" ")
            text.append(f"{counts[severity]} {severity.word}", severity_style(severity, pal))
    return text or Text("no alerts", pal.ok)


@dataclass(frozen=True)
class Remark:
    """An operator's word on one alert: an acknowledgement, or a silence until a time."""

    action: str  # "acknowledge" | "silence"
    key: str  # the alert's key
    by: str  # user@host
    at: float  # wall clock
    note: str = ""
    until: float | None = None  # silence: when it ends
    audit_id: str | None = None  # None: kept in memory only (no audit log)
    severity: Severity = Severity.CRITICAL  # the alert's when it was said: a worse one is news again


class AlertBoard:
    """The engine's alerts as of the last tick, with acknowledgements and silences."""

    def __init__(
        self,
        evaluate: Evaluate,
        audit: AuditLog | None = None,
        operator: Operator | None = None,
        clock: Callable[[], float] = time.time,
        steps: Steps | None = None,
    ) -> None:
        self.evaluate = evaluate
        self.steps = steps  # the same evaluation in slices, for tick_async
        self.audit = audit
        self._operator = operator
        self.clock = clock  # wall clock: alerts' ``since`` and silences' ``until`` are epoch seconds
        self.alerts: list[Alert] = []  # active, worst first, as the engine gave them
        self.shown: list[Alert] = []  # active and not silenced
        self.acks: dict[str, Remark] = {}
        self.silences: dict[str, Remark] = {}
        self.silenced = 0  # active alerts hidden by a silence
        self.counts: dict[Severity, int] = dict.fromkeys(Severity, 0)  # of the shown alerts
        self.host_worst: dict[str, Severity] = {}  # of the shown alerts
        self.error: str | None = None  # the engine failed on the last tick
        self.ticks = 0
        self.pass_s = 0.0  # how long the last pass held the event loop, its slices added up
        self.every_s = 1.0  # how often the app ticks it (rarer while the dashboard is behind its hosts)
        self.silences.update(silences_in(audit, clock()) if audit is not None else {})

    @property
    def operator(self) -> Operator:
        if self._operator is None:
            self._operator = Operator.local()
        return self._operator

    @property
    def in_memory(self) -> bool:
        """Acknowledgements and silences are not written anywhere (no audit log: the demo)."""
        return self.audit is None

    def tick(self, store: FleetStore) -> None:
        """Evaluate the engine once, and work out what the screens read."""
        started = time.perf_counter()
        try:
            alerts = self.evaluate(store)
        except Exception as exc:  # a rule's bug must not take the dashboard down at 3 a.m.: say it instead
            self.error = f"health rules failed: {type(exc).__name__}: {exc}"
            return
        finally:
            self.pass_s = time.perf_counter() - started
        self.took(alerts)

    async def tick_async(self, store: FleetStore) -> None:
        """``tick``, giving the event loop a turn between slices of hosts."""
        if self.steps is None:
            self.tick(store)
            return
        steps = self.steps(store)
        held = 0.0
        try:
            while True:
                started = time.perf_counter()
                try:
                    next(steps)
                except StopIteration as done:
                    alerts: list[Alert] = done.value
                    break
                finally:
                    held += time.perf_counter() - started
                await asyncio.sleep(0)
        except Exception as exc:  # as in tick
            self.error = f"health rules failed: {type(exc).__name__}: {exc}"
            return
        finally:
            self.pass_s = held
        await asyncio.sleep(0)  # taking 4,000 alerts in (silences, counts) is a turn's work of its own
        self.took(alerts)

    def took(self, alerts: list[Alert]) -> None:
        self.error = None
        self.alerts = list(alerts)
        self.ticks += 1
        self.refilter()

    def refilter(self) -> None:
        """Drop ended silences and acknowledgements of cleared alerts; count what is shown."""
        now = self.clock()
        active = {a.key: a.severity for a in self.alerts}
        # An ack ends when its alert clears; an ack or a silence also ends when
        # the alert turns worse than it was (a pending remap that failed).
        self.acks = {k: r for k, r in self.acks.items() if k in active and active[k] <= r.severity}
        self.silences = {
            k: r
            for k, r in self.silences.items()
            if r.until is not None and r.until > now and active.get(k, r.severity) <= r.severity
        }
        self.shown = [a for a in self.alerts if a.key not in self.silences]
        self.silenced = len(self.alerts) - len(self.shown)
        counts = Counter(a.severity for a in self.shown)
        self.counts = {s: counts.get(s, 0) for s in Severity}
        worst: dict[str, Severity] = {}
        for a in self.shown:
            for host in (a.host, *a.behind):  # a jump host's alert marks the hosts it cut off
                if host not in worst or a.severity > worst[host]:
                    worst[host] = a.severity
        self.host_worst = worst

    # -- the operator's word ---------------------------------------------------
    def acknowledge(self, alert: Alert, note: str = "") -> Remark:
        """Record "on it" for ``alert``; AuditError (nothing changed) when the log cannot be written."""
        remark = self._remark("acknowledge", alert, note.strip(), None)
        self.acks[alert.key] = remark
        self.refilter()
        return remark

    def silence(self, alert: Alert, until: float, note: str = "") -> Remark:
        """Hide ``alert`` until ``until`` (epoch seconds); recorded like an acknowledgement."""
        remark = self._remark("silence", alert, note.strip(), until)
        self.silences[alert.key] = remark
        self.refilter()
        return remark

    def _remark(self, action: str, alert: Alert, note: str, until: float | None) -> Remark:
        now = self.clock()
        audit_id = None
        if self.audit is not None:
            audit_id = self.audit.append(record_entry(action, alert, note, until, self.operator))["id"]
        return Remark(action, alert.key, self.operator.label(), now, note, until, audit_id, alert.severity)


def silences_in(audit: AuditLog, now: float) -> dict[str, Remark]:
    """The silences the audit log holds that have not ended: a dashboard
    restarted during an incident keeps them, instead of raising alerts the
    operator had put aside. (Acknowledgements end when their alert clears,
    which a restart cannot know, so they are not brought back.)"""
    found: dict[str, Remark] = {}
    for r in audit.records():
        until, key = r.get("until"), r.get("alert")
        if r.get("action") != "silence" or r.get("status") != "recorded" or not isinstance(key, str):
            continue
        if isinstance(until, (int, float)) and until > now:
            who = r.get("operator") or {}
            by = f"{who.get('user', '?')}@{who.get('host', '?')}" if isinstance(who, dict) else "?"
            severity = next((s for s in Severity if s.word == r.get("severity")), Severity.CRITICAL)
            note = str(r.get("note") or "")
            found[key] = Remark("silence", key, by, float(r.get("t") or now), note, until, r.get("id"), severity)
    return found


def record_entry(action: str, alert: Alert, note: str, until: float | None, operator: Operator) -> dict[str, Any]:
    """The audit record of an acknowledgement or a silence (the log adds seq, t, hashes and id).

    Shaped like the guard's records (operator, action, targets, reason,
    status, message), so ``gputui audit`` and the audit screen read it as
    any other; ``alert`` is the alert's key, ``note`` the operator's words.
    """
    did = "acknowledged"
    if action == "silence":
        did = f"silenced until {time.strftime('%Y-%m-%d %H:%M', time.localtime(until or 0))}"
    return {
        "operator": operator.as_dict(),
        "action": action,
        "targets": [alert.where],
        "alert": alert.key,
        "rule": alert.rule,
        "severity": alert.severity.word,
        "title": alert.title,
        "until": until,
        "note": note,
        "reason": note,  # the audit screen's Reason column
        "status": "recorded",
        "message": f"{did}: {alert.title}",
    }


def health_engine(thresholds: Thresholds, clock: Callable[[], float] = time.time) -> HealthEngine:
    """The rules engine on the config's thresholds (hold and clear times included)."""
    return HealthEngine(thresholds, clock=clock)
