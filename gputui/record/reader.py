"""Reading a recording, whole or damaged.

Opening checks every chunk's CRC (a 1 h, 64-host recording is ~35 MB:
tens of milliseconds), so damage is reported once, up front, in the
operator's words, and never met half-way through a replay. A complete file
is read through its index; a file without one (the recorder was killed) or
with a broken one is walked block by block, and past a damaged block the
walk looks for the next intact one, so a bad chunk in the middle costs only
its own twenty seconds.
"""

from __future__ import annotations

import json
import lzma
import mmap
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gputui.record import format as fmt
from gputui.record.format import BlockHeader, Entry, RecordingError


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """An intact chunk. ``after_gap``: a damaged one came before it, so entering it needs its keyframe."""

    offset: int
    count: int
    t_first: float
    t_last: float
    after_gap: bool = False


@dataclass(frozen=True, slots=True)
class Damage:
    offset: int
    reason: str  # "CRC mismatch", "incomplete chunk", "unreadable block header"
    t_first: float | None = None
    t_last: float | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    keyframe: list[Entry]  # H, e, k, d: the state just before the chunk
    body: list[Entry]  # F, D in arrival order


class Recording:
    """An open recording: its meta, its intact chunks, and what was lost."""

    def __init__(self, path: Path, data: mmap.mmap, meta: dict[str, Any], meta_end: int) -> None:
        self.path = path
        self.data = data
        self.meta = meta
        self.chunks: list[ChunkInfo] = []
        self.damage: list[Damage] = []
        self.complete = False
        self._cache: tuple[int, Chunk] | None = None
        self._locate(meta_end)

    @classmethod
    def open(cls, path: Path) -> Recording:
        """Open ``path``; a RecordingError says plainly when it is no recording at all."""
        try:
            with path.open("rb") as f:
                head = f.read(len(fmt.FILE_MAGIC))
                if not head:
                    raise RecordingError(f"{path}: the file is empty: not a gputui recording")
                if head != fmt.FILE_MAGIC:
                    raise RecordingError(
                        f"{path}: not a gputui recording (it starts with {head!r}, not {fmt.FILE_MAGIC!r}; "
                        "recordings are written by `gputui record` or ctrl+r in the dashboard)"
                    )
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
        meta_at = len(fmt.FILE_MAGIC)
        header = BlockHeader.unpack(data[meta_at : meta_at + fmt.HEADER_SIZE])
        payload = data[meta_at + fmt.HEADER_SIZE : meta_at + fmt.HEADER_SIZE + header.length] if header else b""
        if header is None or header.kind != fmt.META or zlib.crc32(payload) != header.crc:
            data.close()
            raise RecordingError(f"{path}: the recording's header block is damaged: nothing in it can be trusted")
        return cls(path, data, json.loads(payload), meta_at + fmt.HEADER_SIZE + header.length)

    def close(self) -> None:
        self.data.close()

    def _locate(self, start: int) -> None:
        index = self._read_index()
        if index is not None:
            self.complete = True
            self._verify([int(row[0]) for row in index])
        else:
            self._scan(start)

    def _read_index(self) -> list[list[float]] | None:
        offset = fmt.unpack_footer(self.data[-fmt.FOOTER_SIZE :]) if len(self.data) >= fmt.FOOTER_SIZE else None
        if offset is None:
            return None
        header, payload = self._block(offset)
        if header is None or payload is None or header.kind != fmt.INDEX:
            return None
        try:
            chunks: list[list[float]] = json.loads(payload)["chunks"]
        except (ValueError, KeyError, TypeError):
            return None
        return chunks

    def _block(self, offset: int) -> tuple[BlockHeader | None, bytes | None]:
        """The header at ``offset`` and its payload (None when cut short or its CRC fails)."""
        header = BlockHeader.unpack(self.data[offset : offset + fmt.HEADER_SIZE])
        if header is None:
            return None, None
        start = offset + fmt.HEADER_SIZE
        payload = self.data[start : start + header.length]
        if len(payload) < header.length or zlib.crc32(payload) != header.crc:
            return header, None
        return header, payload

    def _verify(self, offsets: list[int]) -> None:
        for offset in offsets:
            self._check_chunk(offset)

    def _check_chunk(self, offset: int) -> int:
        """Check the chunk at ``offset``; keep it or note the damage. Returns where the next block starts (0: unknown)."""
        header, payload = self._block(offset)
        if header is None:
            self.damage.append(Damage(offset, "unreadable block header"))
            return 0
        end = offset + fmt.HEADER_SIZE + header.length
        if payload is None:
            reason = "incomplete chunk" if end > len(self.data) else "CRC mismatch"
            self.damage.append(Damage(offset, reason, header.t_first, header.t_last))
            return end if end <= len(self.data) else 0
        if header.kind == fmt.CHUNK:
            gap = bool(self.damage) and (not self.chunks or self.damage[-1].offset > self.chunks[-1].offset)
            self.chunks.append(ChunkInfo(offset, header.count, header.t_first, header.t_last, gap))
        return end

    def _scan(self, offset: int) -> None:
        """No usable index: walk the blocks, skipping over damage to the next intact header."""
        size = len(self.data)
        while offset < size:
            header = BlockHeader.unpack(self.data[offset : offset + fmt.HEADER_SIZE])
            if header is not None and header.kind == fmt.INDEX:
                return
            following = self._check_chunk(offset)
            if following == 0:
                following = self._next_header(offset + 1)
            offset = following

    def _next_header(self, offset: int) -> int:
        size = len(self.data)
        while (found := self.data.find(fmt.BLOCK_MAGIC, offset)) >= 0:
            if BlockHeader.unpack(self.data[found : found + fmt.HEADER_SIZE]) is not None:
                return found
            offset = found + 1
        return size

    # -- what is in it --------------------------------------------------------
    @property
    def hosts(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        return [(h["name"], tuple(h.get("tags") or ()), h.get("group")) for h in self.meta.get("hosts", [])]

    @property
    def started_at(self) -> float:
        return self.chunks[0].t_first if self.chunks else float(self.meta.get("started_at", 0.0))

    @property
    def ended_at(self) -> float:
        return self.chunks[-1].t_last if self.chunks else self.started_at

    def chunk(self, i: int) -> Chunk:
        """Chunk ``i`` decoded (the last one is cached: replay reads on, and seeks come back)."""
        if self._cache is not None and self._cache[0] == i:
            return self._cache[1]
        info = self.chunks[i]
        start = info.offset + fmt.HEADER_SIZE
        header = BlockHeader.unpack(self.data[info.offset : start])
        assert header is not None  # checked when the file was opened
        try:
            entries = fmt.decode_entries(lzma.decompress(self.data[start : start + header.length]))
        except (lzma.LZMAError, RecordingError) as exc:
            raise RecordingError(f"{self.path}: chunk at byte {info.offset} cannot be decoded: {exc}") from None
        keyed = fmt.KEYFRAME_KINDS
        chunk = Chunk([e for e in entries if e.kind in keyed], [e for e in entries if e.kind not in keyed])
        self._cache = (i, chunk)
        return chunk

    def entries(self) -> Iterator[Entry]:
        """Every frame and link end, in the order they arrived."""
        for i in range(len(self.chunks)):
            yield from self.chunk(i).body

    def chunk_for(self, t: float) -> int:
        """The last chunk that starts at or before ``t`` (the first one if ``t`` is earlier)."""
        found = 0
        for i, info in enumerate(self.chunks):
            if info.t_first > t:
                break
            found = i
        return found

    def problems(self) -> list[str]:
        """What was lost, in the operator's words; empty for a whole recording."""
        return damage_report(self)


def damage_report(rec: Recording) -> list[str]:
    name = rec.path.name
    last_good = rec.chunks[-1].offset if rec.chunks else -1
    tail = [d for d in rec.damage if d.offset > last_good]
    out = []
    for d in rec.damage:
        if d.offset < last_good:
            span = f"{fmt.clock_time(d.t_first)}–{fmt.clock_time(d.t_last)}" if d.t_first and d.t_last else "a stretch"
            out.append(f"{name}: {span} is missing: a chunk is damaged ({d.reason} at byte {d.offset})")
    ends = f"{name}: recording ends at {fmt.clock_time(rec.ended_at)}" if rec.chunks else f"{name}: no chunk could be read"
    if tail and tail[0].reason == "incomplete chunk" and len(tail) == 1:
        out.append(f"{ends}: the file was cut short (its last chunk is incomplete at byte {tail[0].offset}; no index)")
    elif tail:
        n = len(tail)
        which = "the last chunk is" if n == 1 else f"the last {n} chunks are"
        out.append(f"{ends}: {which} damaged ({tail[0].reason} at byte {tail[0].offset})")
    elif not rec.complete:
        why = "the file was cut short there, or its index is damaged (nothing recorded is lost)"
        out.append(f"{ends}: no index after its last whole chunk: {why}")
    return out
