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

from gputui.record import format as fmt

EVENT_SAMPLES_KEPT = 20  # per host, in every keyframe
CHUNK_SECONDS = 20.0  # longer: each keyframe (a hello and a sample per host) costs less; shorter: faster seeks
CHUNK_MAX_BYTES = 16 << 20  # raw bytes: a large fleet cuts chunks sooner, so a seek stays cheap
_TYPE = re.compile(rb'"type"\s*:\s*"(hello|sample|error)"')


@dataclass
class HostState:
    """What a keyframe needs of one host: its latest frames of each kind, and whether it is down."""

    tags: tuple[str, ...] = ()
    group: str | None = None
    frames: dict[bytes, tuple[float, bytes]] = field(default_factory=dict)  # frame type -> (t, raw line)
    down: tuple[float, str] | None = None
    # Samples that carried XIDs: an XID is sent once, so a keyframe without
    # them would lose the host's recent XIDs for anyone who seeks past them.
    event_samples: deque[tuple[float, bytes]] = field(default_factory=lambda: deque(maxlen=EVENT_SAMPLES_KEPT))


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
            state.frames[match.group(1)] = (t, line)
            state.down = None
            if match.group(1) == b"sample" and b'"events"' in line:
                state.event_samples.append((t, line))
        self._add(host, fmt.encode_entry(fmt.FRAME, host, t, line), t)

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
            latest = set(state.frames.values())
            for t, raw in sorted(latest | {e for e in state.event_samples if e not in latest}):
                lines.append(fmt.encode_entry(fmt.KEY_FRAME, name, t, raw))
            if state.down is not None:
                lines.append(fmt.encode_entry(fmt.KEY_DOWN, name, state.down[0], fmt.encode_reason(state.down[1])))
        return b"".join(lines)


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
            f"{self.path}: {len(self.hosts)} hosts, {self.frames} entries in {self.chunks} chunks, "
            f"{self.bytes / 1e6:.2f} MB, {fmt.duration_text(span)} recorded"
        )


class RecordingFile:
    """The file on disk. Not thread-safe: one thread writes it (a recorder's single worker)."""

    def __init__(self, path: Path, title: str, hosts: dict[str, HostState], stale_after: int = 3) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.out: BinaryIO = path.open("wb")
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
