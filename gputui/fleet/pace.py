"""Whether the dashboard keeps up with its hosts, or they only look stale because it does not.

A host turns stale when no frame of it was read for three intervals. When the
dashboard itself runs out of CPU, frames wait unread in pipes and sockets (the
hosts' agents block on a full pipe and sample less often), and hosts turn
stale that are well: the screen would blame them for the dashboard's own lag.

Two readings over the last few seconds tell the cases apart, both measured
here and neither depending on the hosts' clocks:

* how many samples were read against how many the connected hosts send in
  that time (each at its own interval);
* how much of one core the dashboard's process used.

Behind means both: fewer samples read than sent, and the process at the end
of its core. Hosts that send less on their own (a slow agent, a bad link)
lower the first but not the second, and are not the dashboard's doing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gputui.fleet.store import FleetStore

PACE_S = 1.0  # how often the app measures
WINDOW_S = 5.0  # over how long: long enough to smooth a burst, short enough to clear soon after
BUSY_CPU = 0.85  # of one core: the event loop's thread has next to no time left
SHORT_READ = 0.9  # of the samples the hosts send: fewer, while busy, is behind


JUDGE_EVERY_S = 1.0  # the health rules over the whole fleet, once a second
BEHIND_JUDGING_SHARE = 0.25  # while behind, of the dashboard's time at most
JUDGE_EVERY_MAX_S = 5.0  # while behind, at least this often: an XID alerts at once


@dataclass(frozen=True)
class PaceReading:
    """The last few seconds: ``read`` is None when the CPU was not busy enough to ask."""

    cpu: float  # of one core
    read: float | None = None  # samples read / samples the connected hosts send

    @property
    def behind(self) -> bool:
        return self.read is not None and self.cpu >= BUSY_CPU and self.read < SHORT_READ

    def words(self) -> str:
        """ "dashboard behind: 26% of samples read, CPU 98%" (empty when it keeps up)."""
        if not self.behind or self.read is None:
            return ""
        return f"dashboard behind: {self.read:.0%} of samples read, CPU {self.cpu:.0%}"


class Pace:
    """Measures the dashboard against its hosts, once every ``PACE_S`` (the app's timer)."""

    def __init__(
        self,
        store: FleetStore,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
        window_s: float = WINDOW_S,
    ) -> None:
        self.store = store
        self.clock = clock  # real time, not the store's: a replay's store runs on the recording's clock
        self.cpu_clock = cpu_clock
        self.window_s = window_s
        self.marks: deque[tuple[float, float, int]] = deque()  # (time, CPU time, samples read), oldest first
        self.reading = PaceReading(cpu=0.0)

    def measure(self) -> PaceReading:
        now = self.clock()
        marks = self.marks
        marks.append((now, self.cpu_clock(), self.store.samples))
        while len(marks) > 2 and now - marks[1][0] >= self.window_s:
            marks.popleft()
        then, cpu_then, samples_then = marks[0]
        span = now - then
        if span <= 0:
            return self.reading
        cpu = (marks[-1][1] - cpu_then) / span
        read = None
        if cpu >= BUSY_CPU:  # only then is the sum over every host worth its time
            sent = span * self.sending()
            read = (self.store.samples - samples_then) / sent if sent > 0 else None
        self.reading = PaceReading(cpu=cpu, read=read)
        return self.reading

    def sending(self) -> float:
        """Samples a second the connected hosts send: each host with a hello that is not down."""
        return sum(
            1.0 / r.hello.interval_s
            for r in self.store.hosts.values()
            if r.hello is not None and r.down_since is None and r.hello.interval_s > 0
        )


def judging_every_s(reading: PaceReading, pass_s: float) -> float:
    """How often to judge the fleet: every second, and while the dashboard is behind its hosts
    rarer, so that a pass of the rules takes at most a quarter of its time and the rest goes
    to reading their frames. Fresh data is worth more then: a host whose frames wait turns
    stale, and a stale host is an alert; most alerts hold 10 s (``alert_hold_s``) before they
    show anyway. Never rarer than ``JUDGE_EVERY_MAX_S``: an XID or a lost GPU alerts at once."""
    if not reading.behind:
        return JUDGE_EVERY_S
    return min(JUDGE_EVERY_MAX_S, max(JUDGE_EVERY_S, pass_s / BEHIND_JUDGING_SHARE))
