"""When a reservation or a silence ends: ``--until`` words (``2h``, ``30m``,
``1d`` or a local time such as ``2026-12-01 08:00``) read into epoch seconds.

Shared by the command line (``gputui reserve --until``), the action dialog
and the triage screen's silence, so every front end accepts and refuses the
same words with the same reasons. Standard library only: the UI reads it
without loading the command-line front end.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_UNTIL_S = 1.0  # "0s" (or less) would be past before any host saw it
MAX_UNTIL_S = 366 * 86400.0


def parse_until(text: str, now: float | None = None) -> float:
    """Epoch seconds from a duration (2h) or a local time; ValueError, saying why, when it
    is not one, is in the past, too soon (under a second) or over a year away."""
    now = time.time() if now is None else now
    m = DURATION.match(text.strip())
    if m:
        stamp = now + float(m.group(1)) * UNIT_S[m.group(2)]
    else:
        try:
            moment = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"--until {text!r}: expected a duration (2h, 30m, 1d) or a time (2026-12-01 08:00)") from None
        if moment.tzinfo is None:
            moment = moment.astimezone()
        stamp = moment.timestamp()
        if stamp <= now:
            raise ValueError(f"--until {text!r} is in the past")
    if stamp - now < MIN_UNTIL_S:
        raise ValueError(f"--until {text!r} is too soon: give at least 1s from now (e.g. 30m, 2h, 1d)")
    if not math.isfinite(stamp) or stamp - now > MAX_UNTIL_S:
        raise ValueError(f"--until {text!r} is too far away: at most a year from now ({MAX_UNTIL_S / 86400:.0f}d)")
    return stamp
