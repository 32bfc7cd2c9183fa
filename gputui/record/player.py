"""Replaying a recording into an ordinary :class:`FleetStore`.

The store's clock is the replay clock: it reads the recording's time at the
replay position, and while a frame is applied it reads exactly that frame's
arrival time. So ages, ``stale`` and ``down`` come out as they did live, and
everything that reads a store (the UI, the snapshot, health rules) works on a
replay unchanged. Frames go through the same per-host :class:`FrameDecoder`
as live ones, so a recording of agents that send changes replays too: a
keyframe's ``k`` entries hold each such host's last whole sample and the
changes since, and a rebuild starts every host's decoder afresh.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

from gputui.fleet.store import FleetStore
from gputui.frame_decoder import FrameDecoder
from gputui.frames import Delta, FrameError, Sample, parse_line
from gputui.record import format as fmt
from gputui.record.format import Entry, RecordingError
from gputui.record.reader import Recording

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
REBUILD_AFTER_S = 120.0  # a forward seek shorter than this plays on (history kept); longer ones rebuild
BATCH = 2000  # entries applied between yields to the event loop


Decoders = dict[str, FrameDecoder]


def apply_entry(store: FleetStore, entry: Entry, decoders: Decoders | None = None) -> None:
    """One recorded entry into the store, as the runner did it live; ``decoders``
    (by host) are kept by the caller from one entry to the next."""
    if entry.host not in store.hosts:
        store.add_host(entry.host)
    decoders = {} if decoders is None else decoders
    if entry.kind in (fmt.FRAME, fmt.KEY_FRAME):
        decoder = decoders.setdefault(entry.host, FrameDecoder())
        try:
            frame = decoder.frame(entry.data)
        except FrameError as exc:
            store.mark_bad_frame(entry.host, str(exc))  # live, the link was reset: its end follows
            return
        store.apply(entry.host, frame, decoder.columns)
    elif entry.kind in (fmt.DOWN, fmt.KEY_DOWN):
        # The recorded reason is the store's error as it was shown live, already
        # worded with the agent's fatal message: do not let mark_down add it twice.
        store.hosts[entry.host].fatal = None
        store.mark_down(entry.host, _reason(entry.data))
        decoders.pop(entry.host, None)  # live, a new connection starts a new stream


def apply_key_entry(store: FleetStore, entry: Entry, decoders: Decoders | None = None) -> None:
    """A keyframe's frame (``k`` or ``e``) into the store. Its XIDs that the store already
    holds are left out: a keyframe entered after a damaged chunk repeats what was played
    before it, and the store takes two XIDs from the event API as two."""
    if entry.kind not in (fmt.KEY_FRAME, fmt.KEY_EVENTS):
        apply_entry(store, entry, decoders)
        return
    decoders = {} if decoders is None else decoders
    record = store.add_host(entry.host)
    try:
        line = parse_line(entry.data)
        if isinstance(line, (Sample, Delta)) and line.events and record.events:
            line = line.model_copy(update={"events": [e for e in line.events if e not in record.events]})
        # The recorder's own XIDs frame (``e``) stands outside the host's stream of changes.
        decoder = FrameDecoder() if entry.kind == fmt.KEY_EVENTS else decoders.setdefault(entry.host, FrameDecoder())
        frame = decoder.decode(line)
    except FrameError as exc:
        if entry.kind == fmt.KEY_FRAME:
            store.mark_bad_frame(entry.host, str(exc))  # marked bad, as it was live
        else:
            raise RecordingError(f"{entry.host}'s XIDs before {fmt.clock_time(entry.t)} cannot be read: {exc}") from None
        return
    store.apply(entry.host, frame, decoder.columns)


def _reason(data: bytes) -> str:
    try:
        return str(json.loads(data))
    except ValueError:
        return data.decode("utf-8", "replace")


class ReplayPlayer:
    """Plays a recording into ``store`` at ``speed``; pause, speed and seek are instant."""

    def __init__(
        self,
        recording: Recording,
        speed: float = 1.0,
        start_at: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recording = recording
        self.start_at = start_at  # where ``start`` begins (default: the recording's start)
        self.monotonic = monotonic
        self.store = FleetStore(clock=self.now, stale_after=int(recording.meta.get("stale_after", 3)))
        self.speed = min(SPEEDS[-1], max(SPEEDS[0], speed))
        self.playing = False
        self.position = recording.started_at  # recording time at ``anchor``
        self.anchor = monotonic()
        self.pinned: float | None = None  # while applying an entry: its own time
        self.chunk_no = 0
        self.entry_no = 0
        self.problems: list[str] = recording.problems()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # Called after the store was cleared and rebuilt from a keyframe (a seek back, or far
        # forward), once it shows the seek's time: whatever remembers past frames starts again.
        self.on_rebuild: list[Callable[[], None]] = []
        self.decoders: Decoders = {}  # each host's stream of changes, as played so far
        self._rebuild(0)  # the fleet as the recording found it (a ctrl+r recording starts mid-session)

    # -- the clock -------------------------------------------------------------
    def now(self) -> float:
        """The recording's time at the replay position (the store's clock)."""
        if self.pinned is not None:
            return self.pinned
        if not self.playing:
            return self.position
        return min(self.recording.ended_at, self.position + (self.monotonic() - self.anchor) * self.speed)

    def _rebase(self, position: float | None = None) -> None:
        self.position = self.now() if position is None else position
        self.anchor = self.monotonic()
        self.wake.set()

    @property
    def at_end(self) -> bool:
        return self._peek() is None

    # -- controls ---------------------------------------------------------------
    def play(self) -> None:
        if self.at_end:
            self.seek(self.recording.started_at)
        self._rebase()
        self.playing = True

    def pause(self) -> None:
        self._rebase()
        self.playing = False

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def set_speed(self, speed: float) -> None:
        self._rebase()
        self.speed = min(SPEEDS[-1], max(SPEEDS[0], speed))

    def faster(self) -> None:
        self.set_speed(next((s for s in SPEEDS if s > self.speed), SPEEDS[-1]))

    def slower(self) -> None:
        self.set_speed(next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0]))

    def seek(self, t: float) -> None:
        """Show the fleet as it was at ``t``: play on for a short step forward,
        otherwise rebuild the store from the nearest keyframe before ``t``."""
        rec = self.recording
        t = min(rec.ended_at, max(rec.started_at, t))
        now = self.now()
        rebuild = not (now <= t <= now + REBUILD_AFTER_S)
        if rebuild:
            self._rebuild(rec.chunk_for(t))
        self._apply_until(t, limit=None)
        self._rebase(t)
        if rebuild:
            for listener in list(self.on_rebuild):
                listener()

    def seek_by(self, seconds: float) -> None:
        self.seek(self.now() + seconds)

    # -- applying ---------------------------------------------------------------
    def _reset_hosts(self) -> None:
        self.store.clear_hosts()
        for name, tags, group in self.recording.hosts:
            self.store.add_host(name, tags, group)

    def _rebuild(self, chunk_no: int) -> None:
        """Clear the store and load chunk ``chunk_no``'s keyframe: the fleet just before it."""
        self._reset_hosts()
        self.decoders.clear()
        self.chunk_no, self.entry_no = chunk_no, 0
        if self.recording.chunks:
            self._apply_keyframe(chunk_no)

    def _apply_keyframe(self, chunk_no: int) -> None:
        try:
            keyframe = self.recording.chunk(chunk_no).keyframe
        except RecordingError as exc:
            self._note(str(exc))
            return
        for entry in keyframe:
            if entry.kind == fmt.HOST:
                facts = _facts(entry.data)
                self.store.add_host(entry.host, tuple(facts.get("tags") or ()), facts.get("group"))
        # Each host's earlier XIDs first: the latest sample, applied after, is then the host's sample.
        for entry in [e for e in keyframe if e.kind == fmt.KEY_EVENTS]:
            try:
                self._apply(entry, apply_key_entry)
            except RecordingError as exc:
                self._note(str(exc))
        for entry in sorted((e for e in keyframe if e.kind not in (fmt.HOST, fmt.KEY_EVENTS)), key=lambda e: e.t):
            self._apply(entry, apply_key_entry)

    def _apply(self, entry: Entry, how: Callable[[FleetStore, Entry, Decoders], None] = apply_entry) -> None:
        self.pinned = entry.t
        try:
            how(self.store, entry, self.decoders)
        finally:
            self.pinned = None

    def _peek(self) -> Entry | None:
        """The next entry to apply, moving to the next chunk when one is done; None at the end."""
        rec = self.recording
        while self.chunk_no < len(rec.chunks):
            try:
                body = rec.chunk(self.chunk_no).body
            except RecordingError as exc:
                self._note(str(exc))
                body = []
            if self.entry_no < len(body):
                return body[self.entry_no]
            self.chunk_no, self.entry_no = self.chunk_no + 1, 0
            if self.chunk_no < len(rec.chunks) and rec.chunks[self.chunk_no].after_gap:
                self._apply_keyframe(self.chunk_no)  # what the damaged chunk would have told
        return None

    def _apply_until(self, t: float, limit: int | None = BATCH) -> int:
        """Apply every entry up to time ``t`` (at most ``limit``); returns how many."""
        done = 0
        while (limit is None or done < limit) and (entry := self._peek()) is not None and entry.t <= t:
            self._apply(entry)
            self.entry_no += 1
            done += 1
        return done

    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    # -- the pace -----------------------------------------------------------------
    def start(self, at: float | None = None, playing: bool = True) -> None:
        """Seek to ``at`` (default: ``start_at``) and play, in a task on the running loop."""
        at = self.start_at if at is None else at
        self.seek(self.recording.started_at if at is None else at)
        if playing:
            self.play()
        self.task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            entry = self._peek()
            if entry is None and self.playing:
                self.pause()  # the end: time stops here, it does not run on into "stale"
                continue
            if entry is None or not self.playing:
                await self.wake.wait()
                continue
            delay = (entry.t - self.now()) / self.speed
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
                except TimeoutError:
                    pass
                continue
            self._apply_until(self.now())
            await asyncio.sleep(0)


def _facts(data: bytes) -> dict[str, Any]:
    try:
        facts = json.loads(data)
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_SPAN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_offset(text: str, recording: Recording) -> float:
    """A typed position to a recording time: ``12:03:41`` (clock time, local),
    ``+90``, ``+5m``, ``90s``, ``1h2m`` (from the start), ``-30s`` (before the end).
    A ValueError says what was expected."""
    raw = text.strip().replace(" ", "")
    start, end = recording.started_at, recording.ended_at
    clock = _CLOCK.match(raw)
    if clock is not None:
        return _clock_time(int(clock[1]), int(clock[2]), int(clock[3] or 0), start, end, raw)
    sign = raw[:1] if raw[:1] in "+-" else ""
    span = _SPAN.match(raw[len(sign) :])
    if not raw[len(sign) :] or span is None:
        raise ValueError(f"{text!r} is not a time: use 12:03:41 (clock), +5m or 90s (from the start), -30s (before the end)")
    seconds = int(span[1] or 0) * 3600 + int(span[2] or 0) * 60 + float(span[3] or 0)
    at = end - seconds if sign == "-" else start + seconds
    if not start <= at <= end:
        length = fmt.duration_text(end - start)
        raise ValueError(f"{text!r} is outside the recording ({length} long)")
    return at


def _clock_time(hour: int, minute: int, second: int, start: float, end: float, raw: str) -> float:
    """The first moment at or after the recording's start that reads ``hour:minute:second`` locally."""
    if hour > 23 or minute > 59 or second > 59:  # mktime would roll 99:99 over into another hour
        raise ValueError(f"{raw} is not a clock time: hours 0 to 23, minutes and seconds 0 to 59")
    day = time.localtime(start)
    for days in (0, 1):
        at = time.mktime((day.tm_year, day.tm_mon, day.tm_mday + days, hour, minute, second, 0, 0, -1))
        if int(start) <= at <= end + 1:
            return max(start, min(end, at))
    raise ValueError(f"{raw} is not in the recording: it runs from {fmt.clock_time(start)} to {fmt.clock_time(end)}")
