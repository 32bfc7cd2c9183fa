"""The local audit log: JSON lines, each chained to the one before by hash.

Each record carries ``prev`` (the previous record's hash) and ``hash``
(SHA-256 of the record's canonical JSON without ``hash``), so an edited
record breaks its own hash and a deleted one breaks the chain or the
numbering. A deleted tail leaves a valid chain, so a small head file beside
the log keeps the last sequence number and hash: ``verify`` compares them.
Writes are appended under ``flock``, so two dashboards of one operator never
interleave records.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


class AuditError(Exception):
    """The audit log cannot be written; an action must not run without it."""


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Verdict:
    ok: bool
    records: int
    problems: list[str]

    def report(self) -> str:
        if self.ok:
            return f"audit log intact: {self.records} records, chain and head agree"
        return "\n".join([f"audit log damaged ({self.records} records read):", *(f"  {p}" for p in self.problems)])


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

    def _head(self) -> tuple[int, str]:
        try:
            head = json.loads(self.head_path.read_text())
            return int(head["seq"]), str(head["hash"])
        except FileNotFoundError:
            return 0, GENESIS
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"the audit head {self.head_path} is unreadable ({exc}); run `gputui audit verify`") from None

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Write one record and return it, with its ``seq``, ``id`` and ``hash``."""
        with self._locked():
            seq, prev = self._head()
            record: dict[str, Any] = {"seq": seq + 1, "t": round(time.time(), 3), **entry, "prev": prev}
            record["hash"] = _digest(record)
            record["id"] = f"{record['seq']}-{record['hash'][:8]}"
            # ``id`` is derived from seq and hash: left out of the hash, checked on verify.
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            try:
                with open(self.path, "a", encoding="utf-8") as out:
                    os.chmod(self.path, 0o600)
                    out.write(line)
                    out.flush()
                    os.fsync(out.fileno())
                tmp = self.head_path.with_name(self.head_path.name + ".tmp")
                tmp.write_text(json.dumps({"seq": record["seq"], "hash": record["hash"]}))
                os.replace(tmp, self.head_path)
            except OSError as exc:
                raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror}") from None
            return record

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (for the audit screen)."""
        out: list[dict[str, Any]] = []
        try:
            with open(self.path, encoding="utf-8") as src:
                for line in src:
                    try:
                        value = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(value, dict):
                        out.append(value)
        except FileNotFoundError:
            pass
        return out

    def verify(self) -> Verdict:
        problems: list[str] = []
        prev, seq, count = GENESIS, 0, 0
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for number, line in enumerate(lines, 1):
            count += 1
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                problems.append(f"line {number}: not a record ({exc})")
                continue
            problems += _check(record, number, prev, seq)
            prev, seq = str(record.get("hash")), _int(record.get("seq"))
        head_seq, head_hash = self._head_or_none()
        if head_seq is not None and (head_seq, head_hash) != (seq, prev):
            problems.append(
                f"the head says the last record is #{head_seq}, the log ends at #{seq}: records were deleted or appended by hand"
            )
        if head_seq is None and lines:
            problems.append(f"{self.head_path} is missing: the log's end cannot be checked")
        return Verdict(not problems, count, problems)

    def _head_or_none(self) -> tuple[int | None, str]:
        if not self.head_path.exists():
            return None, ""
        try:
            return self._head()
        except AuditError:
            return -1, "unreadable"


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def _check(record: dict[str, Any], number: int, prev: str, seq: int) -> list[str]:
    problems: list[str] = []
    where = f"line {number} (#{record.get('seq')})"
    if record.get("hash") != _digest({k: v for k, v in record.items() if k != "id"}):
        problems.append(f"{where}: its hash does not match its content: the record was edited")
    if record.get("prev") != prev:
        problems.append(f"{where}: it does not follow the record before it: a record was deleted or moved")
    elif record.get("seq") != seq + 1:
        problems.append(f"{where}: numbered {record.get('seq')} after {seq}: a record was deleted")
    if record.get("id") != f"{record.get('seq')}-{str(record.get('hash'))[:8]}":
        problems.append(f"{where}: its id does not match its number and hash")
    return problems
