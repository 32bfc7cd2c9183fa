"""Which alerts reach people, and when: new critical alerts, at a bounded rate.

A dashboard judges the fleet every second; paging someone every second
about the same dead GPU would be worse than not paging at all. So a
notification is due only when a critical alert is *new*: not active at
the last look. It is not sent again while it stays active, and is sent
again if it clears and comes back. A silenced alert counts as seen.

A storm (a rack losing power) must not become a storm of pages either: at
most ``max_per_minute`` notifications go out in any minute. What exceeds
that is never dropped without a count: the last notification that fits is a
summary of the rest, and alerts held while no slot is free go out as one
summary as soon as a slot frees.

This module only decides and words (pure, clock injected, state that can be
saved: ``gputui check --notify`` keeps it between cron runs);
:mod:`gputui.health.notify_send` delivers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from gputui.health.model import Alert, Severity

SCHEMA = "gputui.notify/1"
WINDOW_S = 60.0
SUMMARY_ALERTS = 50  # a summary lists this many alerts in full, and counts them all


@dataclass(frozen=True)
class Notice:
    """One notification: its JSON body (webhook, and the command's stdin) and
    the values a command's ``{placeholders}`` take."""

    body: dict[str, Any]
    # The alert bodies it stands for (itself, or a summary's alerts, every one): what is kept
    # again when it cannot be sent, so that a summary is never summarised in its turn.
    covers: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def fields(self) -> dict[str, str]:
        b = self.body
        gpu = "" if b.get("gpu") is None else str(b["gpu"])
        local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(b["time"])))
        return {
            "severity": str(b["severity"]),
            "host": str(b.get("host") or ""),
            "gpu": gpu,
            "where": str(b.get("where") or ""),
            "title": str(b["title"]),
            "advice": str(b["advice"]),
            "time": local,
            "rule": str(b.get("rule") or ""),
            "key": str(b.get("key") or ""),
        }


def alert_body(a: Alert, now: float) -> dict[str, Any]:
    """An alert as a notification says it; ``time`` is when it is sent, ``since`` when it began."""
    return {
        "schema": SCHEMA,
        "kind": "alert",
        "severity": a.severity.word,
        "host": a.host,
        "gpu": a.gpu,
        "where": a.where,
        "title": a.title,
        "advice": a.advice,
        "time": round(now, 3),
        "since": round(a.since, 3),
        "rule": a.rule,
        "key": a.key,
        "evidence": dict(a.evidence),
        "behind": list(a.behind),
    }


def summary_body(held: Sequence[dict[str, Any]], limit: int, now: float) -> dict[str, Any]:
    """One notification standing for ``held`` alerts the rate limit kept back."""
    n = len(held)
    hosts = sorted({str(h["host"]) for h in held if h.get("host")})
    first = "; ".join(f"{h['where']}: {h['title']}" for h in held[:3])
    more = f" and {n - 3} more" if n > 3 else ""
    return {
        "schema": SCHEMA,
        "kind": "summary",
        "severity": Severity.CRITICAL.word,
        "host": hosts[0] if len(hosts) == 1 else None,
        "gpu": None,
        "where": ", ".join(hosts),
        "title": f"{n} critical alert{'s' * (n != 1)} over the limit of {limit} notifications a minute: {first}{more}",
        "advice": "open the triage screen (t) or run gputui check: more went wrong than one notification each can say",
        "time": round(now, 3),
        "count": n,
        "alerts": list(held[:SUMMARY_ALERTS]),
    }


@dataclass
class NoticeGate:
    """Decides what to send on each look at the alerts; its state can be saved and restored."""

    max_per_minute: int = 6
    clock: Callable[[], float] = time.time
    known: set[str] = field(default_factory=set)  # critical alert keys active at the last look
    sent: list[float] = field(default_factory=list)  # when the notifications of the last minute went out
    held: list[dict[str, Any]] = field(default_factory=list)  # alert bodies waiting for a free slot

    def due(self, alerts: Sequence[Alert], quiet: Collection[str] = ()) -> list[Notice]:
        """The notifications to send now for ``alerts`` (the active ones);
        ``quiet``: keys of silenced alerts, seen but not sent."""
        now = self.clock()
        critical = {a.key: a for a in alerts if a.severity >= Severity.CRITICAL}
        # Not again: one still active since the last look, or one still waiting to go (it cleared and
        # came back while kept), or one silenced.
        skip = self.known | {h.get("key") for h in self.held} | set(quiet)
        self.held += [alert_body(a, now) for k, a in critical.items() if k not in skip]
        self.known = set(critical)
        self.sent = [t for t in self.sent if now - t < WINDOW_S]
        room = self.max_per_minute - len(self.sent)
        if room <= 0 or not self.held:
            return []
        sent_at = round(now, 3)  # a body kept a while goes out with the time it goes out
        alone = self.held if len(self.held) <= room else self.held[: room - 1]
        out = [Notice({**body, "time": sent_at}, (body,)) for body in alone]
        if len(alone) < len(self.held):  # the last slot speaks for all the rest
            rest = self.held[len(alone) :]
            out.append(Notice(summary_body(rest, self.max_per_minute, now), tuple(rest)))
        self.held = []
        self.sent += [now] * len(out)
        return out

    def hold_again(self, notices: Sequence[Notice]) -> None:
        """Notifications that no configured way delivered: first in line at the next look, their
        slots in the rate limit given back. Without this a failed page would be lost for good: its
        alert is known by now, so it would never be due again while it stays active."""
        again = [body for notice in notices for body in notice.covers or (notice.body,)]
        keys = {body.get("key") for body in again}
        self.held[:] = again + [body for body in self.held if body.get("key") not in keys]
        del self.sent[len(self.sent) - len(notices) :]

    def state(self) -> dict[str, Any]:
        return {"known": sorted(self.known), "sent": list(self.sent), "held": list(self.held)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a saved ``state()``; anything malformed in it is ignored, not fatal."""
        known, sent, held = state.get("known"), state.get("sent"), state.get("held")
        self.known = {k for k in known if isinstance(k, str)} if isinstance(known, list) else set()
        self.sent = [float(t) for t in sent if isinstance(t, (int, float))] if isinstance(sent, list) else []
        self.held = [h for h in held if isinstance(h, dict) and "title" in h] if isinstance(held, list) else []
