"""Writing a recording: entries are gathered into chunks, chunks go to disk.

Split in two so that the expensive part can leave the event loop:
:class:`ChunkBuilder` runs where the frames arrive (cheap: it keeps bytes
and each host's latest state for the next keyframe), and
:class:`RecordingFile` compresses and writes whole chunks, in a worker
thread for a live recorder or inline for the benchmark.
"""

from __future__ import annotations

import json
import lzma
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gputui.fleet.store import xid_logged
from gputui.frames import Delta, FrameError, Sample, XidEvent, parse_line
from gputui.health.words import plural
from gputui.protocol import PROTOCOL_VERSION
from gputui.record import format as fmt

EVENTS_KEPT_PER_XID = 5  # per host, GPU and XID, in every keyframe: a storm of one XID cannot push out another
EVENTS_KEPT_S = 24 * 3600.0  # XIDs older than this (by their own time) leave the keyframes
CHUNK_SECONDS = 20.0  # longer: each keyframe (a hello and a sample per host) costs less; shorter: faster seeks
CHUNK_MAX_BYTES = 16 << 20  # raw bytes: a large fleet cuts chunks sooner, so a seek stays cheap
_TYPE = re.compile(rb'"type"\s*:\s*"(hello|sample|delta|error)"')


@dataclass(frozen=True, slots=True)
class KeptEvent:
    """An XID kept for the keyframes: when it arrived, and the sample that carried it (None: seeded)."""

    order: int  # arrival order on its host: a keyframe gives them back in the order the store took them
    t: float
    frame: tuple[float, bytes] | None
    event: XidEvent


@dataclass
class HostState:
    """What a keyframe needs of one host: its latest frames of each kind, its recent XIDs, and whether it is down."""

    tags: tuple[str, ...] = ()
    group: str | None = None
    frames: dict[bytes, tuple[float, bytes]] = field(default_factory=dict)  # frame type -> (t, raw line)
    # An agent that sends changes (``--changes``): the deltas since its latest whole sample,
    # which a keyframe holds too, so that a player rebuilds the host's sample from them.
    changes: list[tuple[float, bytes]] = field(default_factory=list)
    down: tuple[float, str] | None = None
    # An XID is sent once, so a keyframe without the host's recent XIDs would
    # lose them for anyone who seeks past them. Kept per (GPU, XID), so that
    # a storm of one (a job faulting in a loop) cannot push out another.
    events: dict[tuple[int | None, int], deque[KeptEvent]] = field(default_factory=dict)
    events_taken: int = 0

    def keep_events(self, t: float, events: list[XidEvent], frame: tuple[float, bytes] | None) -> None:
        """Keep ``events`` (arrived at ``t`` in ``frame``), skipping those the store would skip as repeats."""
        for event in events:
            kept = self.events.setdefault((event.gpu, event.xid), deque(maxlen=EVENTS_KEPT_PER_XID))
            if xid_logged([k.event for k in kept], event):
                continue
            kept.append(KeptEvent(self.events_taken, t, frame, event))
            self.events_taken += 1

    def recent_events(self, now: float) -> list[KeptEvent]:
        """The kept XIDs of the last :data:`EVENTS_KEPT_S` before ``now``, in arrival order (older ones are dropped)."""
        since = now - EVENTS_KEPT_S
        for key in list(self.events):
            kept = self.events[key]
            while kept and kept[0].event.t < since:
                kept.popleft()
            if not kept:
                del self.events[key]
        return sorted((k for kept in self.events.values() for k in kept if k.event.t >= since), key=lambda k: k.order)


@dataclass(frozen=True)
class PendingChunk:
    """A chunk ready to compress: the keyframe and body lines, uncompressed."""

    payload: bytes
    count: int
    t_first: float
    t_last: float
    hosts: frozenset[str]


class ChunkBuilder:
    """Collects entries into the current chunk and keeps each host's state for the next keyframe."""

    def __init__(self, chunk_seconds: float = CHUNK_SECONDS, max_bytes: int = CHUNK_MAX_BYTES) -> None:
        self.chunk_seconds = chunk_seconds
        self.max_bytes = max_bytes
        self.hosts: dict[str, HostState] = {}
        self.keyframe = b""
        self.body: list[bytes] = []
        self.body_hosts: set[str] = set()
        self.size = 0
        self.t_first = 0.0
        self.t_last = 0.0

    def add_host(self, name: str, tags: tuple[str, ...] = (), group: str | None = None) -> None:
        if name not in self.hosts:
            self.hosts[name] = HostState(tags, group)

    def frame(self, host: str, t: float, line: bytes) -> None:
        state = self._state(host, t)
        match = _TYPE.search(line)
        if match is not None:
            kind = match.group(1)
            if kind == b"delta":
                if b"sample" in state.frames:  # without the whole sample before them, changes tell nothing
                    state.changes.append((t, line))
            else:
                state.frames[kind] = (t, line)
            if kind == b"sample":
                state.changes = []
            state.down = None
            if kind in (b"sample", b"delta") and b'"events"' in line:
                self._events(state, t, line)
        self._add(host, fmt.encode_entry(fmt.FRAME, host, t, line), t)

    @staticmethod
    def _events(state: HostState, t: float, line: bytes) -> None:
        try:
            frame = parse_line(line)
        except FrameError:
            return  # the store rejects it too: it carries nothing
        if isinstance(frame, (Sample, Delta)) and frame.events:
            state.keep_events(t, frame.events, (t, line))

    def down(self, host: str, t: float, reason: str) -> None:
        state = self._state(host, t)
        state.down = (t, reason)
        self._add(host, fmt.encode_entry(fmt.DOWN, host, t, fmt.encode_reason(reason)), t)

    def _state(self, host: str, t: float) -> HostState:
        """The host's state, after taking the keyframe if this entry starts a chunk."""
        if not self.body:
            self.t_first = t
            self.keyframe = self._keyframe()  # the state just before this chunk's first entry
        return self.hosts.get(host) or self.hosts.setdefault(host, HostState())

    def _add(self, host: str, line: bytes, t: float) -> None:
        self.body.append(line)
        self.body_hosts.add(host)
        self.size += len(line)
        self.t_last = t

    def due(self, now: float) -> bool:
        """Is the current chunk long or large enough to be cut?"""
        return bool(self.body) and (now - self.t_first >= self.chunk_seconds or self.size >= self.max_bytes)

    def cut(self) -> PendingChunk | None:
        """The current chunk, and start a new one; None when it is empty."""
        if not self.body:
            return None
        payload = self.keyframe + b"".join(self.body)
        chunk = PendingChunk(payload, len(self.body), self.t_first, self.t_last, frozenset(self.body_hosts))
        self.body, self.body_hosts, self.size, self.keyframe = [], set(), 0, b""
        return chunk

    def _keyframe(self) -> bytes:
        lines: list[bytes] = []
        for name, state in self.hosts.items():
            facts = json.dumps({"tags": list(state.tags), "group": state.group}).encode()
            lines.append(fmt.encode_entry(fmt.HOST, name, 0.0, facts))
            latest = state.frames.get(b"sample")
            carried = {latest, *state.changes}  # the frames written below carry their own XIDs
            events = [k for k in state.recent_events(self.t_first) if k.frame is None or k.frame not in carried]
            if events:  # before the latest sample, which carries its own XIDs
                lines.append(fmt.encode_entry(fmt.KEY_EVENTS, name, events[-1].t, events_frame(events)))
            for t, raw in sorted([*state.frames.values(), *state.changes], key=lambda f: f[0]):  # stable: ties keep arrival order
                lines.append(fmt.encode_entry(fmt.KEY_FRAME, name, t, raw))
            if state.down is not None:
                lines.append(fmt.encode_entry(fmt.KEY_DOWN, name, state.down[0], fmt.encode_reason(state.down[1])))
        return b"".join(lines)


def events_frame(events: list[KeptEvent]) -> bytes:
    """The ``e`` entry's frame: a sample with no GPUs that carries only ``events``."""
    frame = {
        "type": "sample",
        "v": PROTOCOL_VERSION,
        "t": events[-1].t,
        "seq": 0,
        "gpus": [],
        "events": [k.event.model_dump(mode="json", exclude_none=True) for k in events],
    }
    return json.dumps(frame, separators=(",", ":")).encode()


@dataclass
class Written:
    """What a recording holds so far, for the operator."""

    path: Path
    started_at: float
    chunks: int = 0
    frames: int = 0
    bytes: int = 0
    t_last: float | None = None
    hosts: set[str] = field(default_factory=set)

    def describe(self) -> str:
        span = (self.t_last or self.started_at) - self.started_at
        return (
            f"{self.path}: {plural(len(self.hosts), 'host')}, {plural(self.frames, 'entry')} in {plural(self.chunks, 'chunk')}, "
            f"{self.bytes / 1e6:.2f} MB, {fmt.duration_text(span)} recorded"
        )


def _create(path: Path, unique: bool) -> tuple[Path, BinaryIO]:
    """Open a new file at ``path`` (or the next free name with ``unique``); never one that exists."""
    n = 1
    while True:
        candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        try:
            return candidate, candidate.open("xb")  # exclusive: two recorders cannot both get it
        except FileExistsError:
            if not unique:
                raise
            n += 1


class RecordingFile:
    """The file on disk. Not thread-safe: one thread writes it (a recorder's single worker)."""

    def __init__(self, path: Path, title: str, hosts: dict[str, HostState], stale_after: int = 3, unique: bool = False) -> None:
        """Create ``path``; a recording is never overwritten: when it exists, FileExistsError, or with
        ``unique`` (a name gputui chose) the first free ``<stem>-2``, ``<stem>-3``... (``self.path``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.out = _create(path, unique)
        self.index: list[list[float | int]] = []
        self.info = Written(path, time.time())
        meta = {
            "format": fmt.FORMAT_NAME,
            "title": title,
            "started_at": self.info.started_at,
            "stale_after": stale_after,
            "hosts": [{"name": n, "tags": list(s.tags), "group": s.group} for n, s in hosts.items()],
        }
        self.out.write(fmt.FILE_MAGIC + fmt.block(fmt.META, json.dumps(meta).encode()))
        self.out.flush()
        self.info.bytes = self.out.tell()

    def write(self, chunk: PendingChunk) -> None:
        """Compress and append one chunk; flushed so that a crash loses at most the chunk being built."""
        data = lzma.compress(chunk.payload, preset=fmt.XZ_PRESET)
        offset = self.out.tell()
        self.out.write(fmt.block(fmt.CHUNK, data, chunk.count, chunk.t_first, chunk.t_last))
        self.out.flush()
        self.index.append([offset, chunk.t_first, chunk.t_last, chunk.count])
        info = self.info
        info.chunks += 1
        info.frames += chunk.count
        info.bytes = self.out.tell()
        info.t_last = chunk.t_last
        info.hosts |= chunk.hosts

    def close(self) -> Written:
        """Write the index and the footer: the file is then complete."""
        if self.out.closed:
            return self.info
        offset = self.out.tell()
        index = {"chunks": self.index, "ended_at": time.time(), "entries": self.info.frames}
        self.out.write(fmt.block(fmt.INDEX, json.dumps(index).encode()) + fmt.footer(offset))
        self.out.close()
        self.info.bytes = self.path.stat().st_size
        return self.info
