"""The ``.gtrec`` file format: blocks of compressed frames, an index, a footer.

Layout::

    "GTREC01\\n"                        file magic (8 bytes)
    block M                             meta: JSON (hosts, title, started_at, stale_after)
    block C, block C, ...               chunks: xz-compressed entry lines, ~20 s each
    block I                             index: JSON (each chunk's offset, times, count)
    footer                              index offset (u64) + "GTRECEND"

Every block starts with a 37-byte header: magic ``GTCK``, kind, payload
length, entry count, first and last arrival time, the payload's CRC32 and
the header's own CRC32, so a reader can walk a file whose footer never got
written (the dashboard was killed) and tell exactly where damage begins.

A chunk's payload is text lines, one entry a line, tab-separated::

    H <host> <{"tags": [...], "group": ...}>   a host exists (keyframe)
    e <host> <t> <sample frame>                the host's recent XIDs before the chunk (keyframe, see below)
    k <host> <t> <raw frame>                   the host's latest hello/sample/error before the chunk
    d <host> <t> <reason>                      the host was down before the chunk
    F <host> <t> <raw frame>                   a frame arrived at t
    D <host> <t> <reason>                      the host's link ended at t

Hosts and reasons are JSON strings (so they hold no tab or newline); raw
frames are the bytes the host sent, which never hold a newline (they were
split on it). The keyframe (H, e, k, d) comes first, so a seek can start at any
chunk. xz rather than zlib: zlib's 32 KB window cannot reach back to the same
host's previous sample when 64 hosts interleave; xz's 8 MiB dictionary can,
which is most of the gain a delta encoding would give, with none of its code.

An XID is sent once, in the sample that follows it, so a keyframe that held
only each host's latest sample would lose every earlier XID for anyone who
seeks past it. The ``e`` entry keeps them: a sample frame written by the
recorder, with no GPUs and only the host's recent XIDs (the newest few of
each GPU and XID, of the last day, oldest first, without those of the
latest sample, which its ``k`` entry carries). A player applies it before
the host's other keyframe entries, so the real latest sample still ends up
as the host's sample. Files written before the ``e`` entry kept whole
XID-bearing samples as extra ``k`` entries instead; they read as before.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass

FILE_MAGIC = b"GTREC01\n"
BLOCK_MAGIC = b"GTCK"
FOOTER_MAGIC = b"GTRECEND"
FORMAT_NAME = "gputui.recording/1"
# magic, kind, payload length, entry count, first t, last t, payload CRC32, header CRC32
_HEADER = struct.Struct("<4scIIddII")
HEADER_SIZE = _HEADER.size
_FOOTER = struct.Struct("<Q8s")
FOOTER_SIZE = _FOOTER.size
META, CHUNK, INDEX = b"M", b"C", b"I"
XZ_PRESET = 6
MAX_BLOCK_BYTES = 1 << 30  # a length above this is damage, not data

# Entry kinds
HOST, KEY_EVENTS, KEY_FRAME, KEY_DOWN, FRAME, DOWN = "H", "e", "k", "d", "F", "D"
KEYFRAME_KINDS = (HOST, KEY_EVENTS, KEY_FRAME, KEY_DOWN)


class RecordingError(Exception):
    """A file that is not a recording, or one too damaged to read at all."""


@dataclass(frozen=True, slots=True)
class BlockHeader:
    kind: bytes
    length: int
    count: int
    t_first: float
    t_last: float
    crc: int

    def pack(self) -> bytes:
        head = _HEADER.pack(BLOCK_MAGIC, self.kind, self.length, self.count, self.t_first, self.t_last, self.crc, 0)
        return head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))

    @classmethod
    def unpack(cls, data: bytes) -> BlockHeader | None:
        """The header in ``data``, or None when it is not a whole, intact header."""
        if len(data) < HEADER_SIZE:
            return None
        magic, kind, length, count, t_first, t_last, crc, hcrc = _HEADER.unpack_from(data)
        if magic != BLOCK_MAGIC or hcrc != zlib.crc32(data[: HEADER_SIZE - 4]) or length > MAX_BLOCK_BYTES:
            return None
        return cls(kind, length, count, t_first, t_last, crc)


def block(kind: bytes, payload: bytes, count: int = 0, t_first: float = 0.0, t_last: float = 0.0) -> bytes:
    """A whole block: header then payload."""
    return BlockHeader(kind, len(payload), count, t_first, t_last, zlib.crc32(payload)).pack() + payload


def footer(index_offset: int) -> bytes:
    return _FOOTER.pack(index_offset, FOOTER_MAGIC)


def unpack_footer(data: bytes) -> int | None:
    """The index offset from the file's last bytes, or None when there is no footer."""
    if len(data) != FOOTER_SIZE:
        return None
    offset, magic = _FOOTER.unpack(data)
    return int(offset) if magic == FOOTER_MAGIC else None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a chunk: ``data`` is the raw frame, a reason, or a host's tags and group."""

    kind: str
    host: str
    t: float
    data: bytes


def encode_entry(kind: str, host: str, t: float, data: bytes) -> bytes:
    name = json.dumps(host).encode()
    if kind == HOST:
        return b"%s\t%s\t%s\n" % (kind.encode(), name, data)
    return b"%s\t%s\t%.6f\t%s\n" % (kind.encode(), name, t, data)


def encode_reason(reason: str) -> bytes:
    return json.dumps(reason).encode()


def decode_entries(payload: bytes) -> list[Entry]:
    """Every entry of a chunk's (decompressed) payload; a malformed line is a RecordingError."""
    out: list[Entry] = []
    names: dict[bytes, str] = {}  # a chunk names the same few hosts hundreds of times
    for n, line in enumerate(payload.split(b"\n")[:-1]):
        try:
            if line[:1] == b"H":
                kind, name, data = line.split(b"\t", 2)
                t = 0.0
            else:
                kind, name, stamp, data = line.split(b"\t", 3)
                t = float(stamp)
            host = names.get(name)
            if host is None:
                host = names[name] = json.loads(name)
        except ValueError as exc:
            raise RecordingError(f"entry {n + 1} is malformed ({exc})") from None
        out.append(Entry(kind.decode("ascii", "replace"), host, t, data))
    return out


def clock_time(t: float) -> str:
    """Local wall-clock time for messages (times are UTC epoch seconds in the file)."""
    return time.strftime("%H:%M:%S", time.localtime(t))


def date_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def duration_text(seconds: float) -> str:
    """``1:02:03`` or ``2:03``: how far into a recording."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
