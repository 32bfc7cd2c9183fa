"""Small wording helpers shared by the rules and the reports."""

from __future__ import annotations

import time

from gputui.render import age_words


def clock_words(t: float, now: float) -> str:
    """A wall-clock time in local time, with the date only when it is not today, and how long ago."""
    moment, today = time.localtime(t), time.localtime(now)
    same_day = (moment.tm_year, moment.tm_yday) == (today.tm_year, today.tm_yday)
    stamp = time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M", moment)
    return f"{stamp} ({age_words(max(0.0, now - t))} ago)"


def short(text: str | None, width: int = 80) -> str:
    """One line of at most ``width`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, made plural unless ``n`` is 1 (entry, entries; day, days)."""
    if n == 1:
        return f"{n} {word}"
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return f"{n} {word[:-1]}ies"
    return f"{n} {word}s"
