"""The local audit log: JSON lines, each chained to the one before by hash.

Each record carries ``prev`` (the previous record's hash) and ``hash``
(SHA-256 of the record's canonical JSON without ``hash``), so an edited
record breaks its own hash and a deleted one breaks the chain or the
numbering. A deleted tail leaves a valid chain, so a small head file beside
the log keeps the last sequence number and hash: ``verify`` compares them.
Writes are appended under ``flock``, so two dashboards of one operator never
interleave records.

Damage. A line that is not a record (cut off by a crash or a full disk,
garbled, not UTF-8) is reported by ``verify`` for as long as it is there,
and the chain goes around it. A record always starts a line of its own:
when the log does not end with a newline, one is written first. When the
log's last line is damaged, the new record follows the last good record
instead of the head (its ``prev`` is that record's hash, its ``seq`` the
number after it) and says so in its ``after_damage`` field, hashed like the
rest: the damaged line's number and what the head said then. So nothing
written after a damage is lost or fails to verify, and the damage cannot be
tidied away unseen: ``verify`` reports a record whose damaged line has gone,
and one written when the head was further on than the last good record (and
the cut one after it). Records that older versions glued onto a cut-off line
are read from where they start.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gputui.health.words import plural

GENESIS = "0" * 64
RECORD_START = b'{"seq":'  # how every record's line begins: seq is its first key


class AuditError(Exception):
    """The audit log cannot be written (or read); an action must not run without it."""


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Verdict:
    ok: bool
    records: int
    problems: list[str]
    missing: bool = False  # no log and no head: nothing was ever recorded at that path
    path: str = ""

    def report(self) -> str:
        if self.missing:
            return f"no audit log at {self.path}: nothing has been recorded there"
        if self.ok and self.records == 0:  # an empty file, no head: nothing to chain, nothing to agree
            return f"audit log {self.path} is empty: nothing has been recorded there"
        if self.ok:
            return f"audit log intact: {plural(self.records, 'record')}, chain and head agree"
        return "\n".join([f"audit log damaged ({plural(self.records, 'record')} read):", *(f"  {p}" for p in self.problems)])


@dataclass
class Line:
    """One line of the log (or a record glued onto a cut-off one): a record, or why it is not one."""

    number: int
    record: dict[str, Any] | None
    damage: str = ""


@dataclass
class Chain:
    """A walk along the log: the last good record, and what was wrong on the way."""

    prev: str = GENESIS
    seq: int = 0
    records: int = 0
    damaged: Line | None = None  # the last damaged line, when no good record came after it
    problems: list[str] = field(default_factory=list)


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.head_path = path.with_name(path.name + ".head")
        self.lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot open the audit log {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _head(self) -> tuple[int, str] | None:
        """The head's (seq, hash); None when there is no head; AuditError when it cannot be read."""
        try:
            head = json.loads(self.head_path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"the audit head {self.head_path} is unreadable ({exc.strerror})") from None
        except ValueError as exc:  # not UTF-8, or not JSON
            raise AuditError(f"the audit head {self.head_path} is unreadable ({exc})") from None
        seq, digest = (head.get("seq"), head.get("hash")) if isinstance(head, dict) else (None, None)
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
            raise AuditError(f"the audit head {self.head_path} is unreadable (not a seq and a hash: {str(head)[:60]!r})")
        return seq, digest

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Write one record and return it, with its ``seq``, ``id`` and ``hash``."""
        with self._locked():
            try:
                head_seq, head_hash = self._head() or (0, GENESIS)
            except AuditError as exc:
                raise AuditError(f"{exc}; run `gputui audit verify`") from None
            seq, prev, after = head_seq, head_hash, None
            newline = self._ends_with_newline()
            if not newline:
                chain = _walk(self._read_lines() or [])
                if chain.damaged is not None:  # go around it, from the last good record
                    seq, prev = chain.seq, chain.prev
                    after = {"line": chain.damaged.number, "head_seq": head_seq, "head_hash": head_hash}
            record: dict[str, Any] = {"seq": seq + 1, "t": round(time.time(), 3), **entry}
            if after is not None:
                record["after_damage"] = after
            record["prev"] = prev
            record["hash"] = _digest(record)
            record["id"] = f"{record['seq']}-{record['hash'][:8]}"
            # ``id`` is derived from seq and hash: left out of the hash, checked on verify.
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            self._write(line if newline else "\n" + line, record)
            return record

    def _ends_with_newline(self) -> bool:
        """Whether a record can start right at the end (an empty or absent log can take one)."""
        try:
            with open(self.path, "rb") as log:
                if log.seek(0, os.SEEK_END) == 0:
                    return True
                log.seek(-1, os.SEEK_END)
                return log.read(1) == b"\n"
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror}") from None

    def _write(self, text: str, record: dict[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as out:
                os.chmod(self.path, 0o600)
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            tmp = self.head_path.with_name(self.head_path.name + ".tmp")
            tmp.write_text(json.dumps({"seq": record["seq"], "hash": record["hash"]}))
            os.replace(tmp, self.head_path)
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror}") from None

    def _read_lines(self) -> list[Line] | None:
        """The log, line by line; None when there is none; AuditError when it cannot be read."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        chunks = data.split(b"\n")
        last = chunks.pop()  # b"" when the log ends with a newline (or is empty)
        lines = [line for number, raw in enumerate(chunks, 1) for line in _parse_line(number, raw)]
        if last:
            lines += _parse_line(len(chunks) + 1, last, cut=True)
        return lines

    def load(self) -> list[dict[str, Any]] | None:
        """Every readable record, oldest first; None when there is no log; AuditError when it cannot be read."""
        lines = self._read_lines()
        return None if lines is None else [line.record for line in lines if line.record is not None]

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (for the audit screen); none when the log
        is absent or cannot be read (``verify`` says why)."""
        try:
            return self.load() or []
        except AuditError:
            return []

    def verify(self) -> Verdict:
        where = str(self.path)
        try:
            lines = self._read_lines()
        except AuditError as exc:
            return Verdict(False, 0, [str(exc)], path=where)
        try:
            head, head_problem = self._head(), None
        except AuditError as exc:
            head, head_problem = None, f"{exc}: the log's end cannot be checked"
        if lines is None and head is None and head_problem is None:
            return Verdict(True, 0, [], missing=True, path=where)
        chain = _walk(lines or [])
        problems = chain.problems
        if head_problem is not None:
            problems.append(head_problem)
        elif head is None and lines:
            problems.append(f"{self.head_path} is missing: the log's end cannot be checked")
        elif head is not None and lines is None:
            problems.append(f"{where} is missing, but its head says record #{head[0]} was written: the log was deleted or moved")
        elif head is not None and head != (chain.seq, chain.prev):
            problems.append(_head_mismatch(head[0], chain))
        return Verdict(not problems, chain.records, problems, path=where)


def _head_mismatch(head_seq: int, chain: Chain) -> str:
    if chain.damaged is not None and head_seq == chain.seq + 1:
        return (
            f"the head says the last record is #{head_seq}, the last good one is #{chain.seq}: "
            f"#{head_seq} is probably the damaged line {chain.damaged.number}"
        )
    return f"the head says the last record is #{head_seq}, the log ends at #{chain.seq}: records were deleted or appended by hand"


def _decode(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
    except ValueError as exc:
        return None, f"not a record ({exc})"
    if not isinstance(value, dict):
        return None, "not a record (not a JSON object)"
    return value, ""


def _parse_line(number: int, raw: bytes, cut: bool = False) -> list[Line]:
    """The record on a line; or the damage, then any record glued onto it after a cut."""
    record, why = _decode(raw)
    if record is not None:
        return [Line(number, record)]
    start = raw.rfind(RECORD_START, 1)
    if start > 0:
        glued, _ = _decode(raw[start:])
        if glued is not None:
            return [*_parse_line(number, raw[:start], cut=True), Line(number, glued)]
    return [Line(number, None, f"cut off, {why}" if cut else why)]


def _walk(lines: list[Line]) -> Chain:
    chain = Chain()
    for line in lines:
        if line.record is None:
            chain.problems.append(f"line {line.number}: {line.damage}")
            chain.damaged = line
            continue
        chain.problems += _check(line.record, line.number, chain)
        chain.prev, chain.seq = str(line.record.get("hash")), _int(line.record.get("seq"))
        chain.records += 1
        chain.damaged = None
    return chain


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def _check(record: dict[str, Any], number: int, chain: Chain) -> list[str]:
    problems: list[str] = []
    where = f"line {number} (#{record.get('seq')})"
    if record.get("hash") != _digest({k: v for k, v in record.items() if k != "id"}):
        problems.append(f"{where}: its hash does not match its content: the record was edited")
    if record.get("prev") != chain.prev and chain.damaged is not None:
        problems.append(f"{where}: it does not follow #{chain.seq}, the last good record: it followed the damaged line")
    elif record.get("prev") != chain.prev:
        problems.append(f"{where}: it does not follow the record before it: a record was deleted or moved")
    elif record.get("seq") != chain.seq + 1:
        problems.append(f"{where}: numbered {record.get('seq')} after {chain.seq}: a record was deleted")
    if record.get("id") != f"{record.get('seq')}-{str(record.get('hash'))[:8]}":
        problems.append(f"{where}: its id does not match its number and hash")
    return problems + _after_damage(record, where, chain)


def _after_damage(record: dict[str, Any], where: str, chain: Chain) -> list[str]:
    """A record written around a damaged line: that line must still be there, and the
    head (then) no further on than the last good record and the cut one after it."""
    mark = record.get("after_damage")
    if mark is None:
        return []
    if chain.damaged is None:
        return [f"{where}: it was written after a damaged line, which is no longer before it: that line was deleted"]
    head = (mark.get("head_seq"), mark.get("head_hash")) if isinstance(mark, dict) else (None, None)
    if head == (chain.seq, chain.prev) or head[0] == chain.seq + 1:
        return []
    return [
        f"{where}: when it was written the head said the last record was #{head[0]}, "
        f"but the last good record before the damaged line is #{chain.seq}: records were deleted"
    ]
