"""The dashboard's heap at thousands of hosts: short collector pauses, freed memory given back.

Python's collector stops the event loop for as long as it takes to walk the
objects of the generations it collects. Two kinds of objects fill a large
dashboard's heap: each host's latest frame, replaced every interval (tens of
thousands of objects at 1,024 hosts, nearly all freed by their reference
count, never by the collector), and what lives as long as the host does (its
history, its hello, the health engine's memory of it). The thresholds keep
each collection of the young generations small; :class:`HeapSettler` takes
the long-lived part out of the walk once the fleet has connected, so a full
collection walks only what came after, not the whole heap; and the store
takes the frames it keeps out of the walk altogether (gputui/frame_untracking.py).
Measured with ``bench/ui_scale.py`` (its ``gc_pauses`` and loop-stall figures).

Replaced frames leave glibc's heap full of holes: what it holds free grew from
6 to 27 MB in four minutes at 1,024 hosts while what was in use stayed flat,
and glibc gives such holes back to the system only when asked
(``malloc_trim``), which the app does once a minute (a few milliseconds).
"""

from __future__ import annotations

import ctypes
import gc
import time
from collections.abc import Callable

from gputui.fleet.store import FleetStore, HostRecord, HostState

# Python's defaults (700, 10, 10) suit short scripts, not a dashboard that parses thousands of
# frames a second. A young generation of 2,000 objects is walked in about 5 ms at 1,024 hosts
# (20,000 took 30 to 70); the middle one, collected every 100 of those, holds about a second of
# frames, whatever its threshold, so a higher one only makes its pauses rarer.
GC_THRESHOLDS = (2_000, 100, 50)
SETTLE_WITHIN_S = 120.0  # a fleet still connecting after this long is settled as it is
# The young generation's threshold counts objects made less objects freed, and a frame that
# replaces the one before frees as much as it makes: frames piled up in it, tens of thousands at
# 1,024 hosts (40 ms to walk; 156 ms at 4,096), until something else made a collection happen.
# Collected on a clock as well, it holds a tenth of a second of frames at most. Since the store
# untracks the frames it keeps (gputui/frame_untracking.py) the clock matters only where that
# cannot be done (an interpreter other than CPython) and for frames on their way to the store.
YOUNG_EVERY_S = 0.1
# Young collections between two of the app's own (``collect_young``) at 4,096 hosts: two or three,
# the collector's own trigger among them; the middle generation is taken this many early.
MIDDLE_EARLY = 10
TRIM_EVERY_S = 60.0  # glibc's free holes given back this often (1 to 6 ms at 1,024 hosts)


def tune_gc() -> None:
    """The collector's thresholds for the dashboard's process (``GC_THRESHOLDS``): only when garbage
    in cycles is looked for changes, not what is freed."""
    gc.set_threshold(*GC_THRESHOLDS)


class HeapSettler:
    """Freezes the heap (``gc.freeze``) once, when every host has connected or given up trying, or
    ``within_s`` after the start: what exists then is mostly what lives as long as the dashboard
    does, and the collector need not walk it again each full collection (300 to 650 ms at 1,024
    hosts). Frozen objects are still freed by their reference count; only a cycle of them that
    became garbage later would stay (a screen open at that moment and closed after), once.

    Before it, the young and middle generations are collected, not the oldest: a full collection
    there was the longest hold of the event loop in a run (150 to 210 ms at 1,024 hosts, 585 at
    4,096), for about 60 objects of garbage in cycles it found beyond the middle one's (measured
    at 1,024 hosts), which are frozen with the rest instead: a few kilobytes, once."""

    young_every_s = YOUNG_EVERY_S  # the app collects the young generation this often (``collect_young``)
    trim_every_s = TRIM_EVERY_S  # and gives freed memory back this often (``give_back``)

    def __init__(self, store: FleetStore, clock: Callable[[], float] = time.monotonic, within_s: float = SETTLE_WITHIN_S) -> None:
        self.store = store
        self.clock = clock
        self.deadline = clock() + within_s
        self.settled = False
        self.trim = malloc_trim()

    def check(self) -> bool:
        """Freeze now if the fleet has settled; whether it has (then or before)."""
        if self.settled:
            return True
        now = self.store.clock()
        # A host that has said hello but sent no sample yet makes its history with its first one:
        # frozen before it, that history (tens of objects a GPU) would be walked every full collection.
        connecting = any(waiting(r, now) for r in self.store.hosts.values())
        if connecting and self.clock() < self.deadline:
            return False
        gc.collect(1)  # what is garbage in the younger generations is freed, not frozen
        gc.freeze()
        self.settled = True
        return True

    @staticmethod
    def collect_young() -> None:
        """The young generation; and the older ones as well once they are nearly due, so that they
        are collected here, in this timer's own turn of the event loop, and not by the collector's
        own trigger inside whatever allocated next: at 4,096 hosts that was most often the
        overview's redraw, whose 10 to 13 ms a middle collection made 20 to 28, and a full one
        (30 to 35 ms) made the longest stall of an hour (68 ms)."""
        gc.collect(generation_due())

    def give_back(self) -> None:
        """Free memory the C library holds in holes goes back to the system (where it can: glibc)."""
        if self.trim is not None:
            self.trim()


def generation_due() -> int:
    """The oldest generation to collect now: the middle one once it is within ``MIDDLE_EARLY``
    young collections of the collector taking it itself (which it does once more young collections
    than its threshold have run since the last), and with it the oldest once that has had as many
    middle collections as its threshold (the collector takes it at the next one after that, as
    long as enough has come into it since the last full collection: here it always had)."""
    _, middle, oldest = gc.get_threshold()
    _, middle_count, oldest_count = gc.get_count()
    if middle_count < max(middle // 2, middle - MIDDLE_EARLY):
        return 0
    return 2 if oldest_count >= oldest else 1


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (musl, macOS): what free()
    keeps in holes between blocks still in use is released only when this is called."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # TypeError: no CDLL(None) (Windows)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def waiting(record: HostRecord, now: float) -> bool:
    """Whether the host is still on its way to its first sample: connecting, or said hello and no
    more, stale or not. At 4,096 hosts a dashboard behind its hosts read hundreds of hellos long
    before their first samples, those hosts turned stale meanwhile, and the heap was frozen
    without their history: 963 hosts' (about 79,000 objects), walked by every full collection
    after, 54 ms each. Only a host that is down is not waited for (the deadline still holds)."""
    state = record.state(now)
    return state is HostState.CONNECTING or (state is not HostState.DOWN and not record.has_sample)
