"""The recorder: a tap on the fleet runner that writes every raw line to a file.

It sees exactly what the store sees (each line before it is parsed, each
link's end), stamped with the wall-clock time it arrived. Compression and
disk writes run in one worker thread, in order, so the dashboard's event
loop only ever appends bytes to a list.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore
from gputui.record.writer import CHUNK_SECONDS, ChunkBuilder, RecordingFile, Written


def recordings_dir() -> Path:
    """``$XDG_STATE_HOME/gputui/recordings``, by default ``~/.local/state/gputui/recordings``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "gputui" / "recordings"


def default_path(now: float | None = None) -> Path:
    """``<recordings>/20260101-120304.gtrec``, or ``...-2.gtrec``, ``-3``... when that name is taken
    (two recordings started in the same second). Only a hint: the recorder creates the file
    exclusively, and under :func:`recordings_dir` takes the next free name if another got there first."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    folder = recordings_dir()
    path = folder / f"{stamp}.gtrec"
    n = 2
    while path.exists():
        path = folder / f"{stamp}-{n}.gtrec"
        n += 1
    return path


def seed_from_store(builder: ChunkBuilder, store: FleetStore, wall_now: float) -> None:
    """What the store knows when a recording starts mid-session: the first keyframe's state.

    A host's hello came long before ``ctrl+r``; without it a replay would not
    know the GPUs. The store keeps parsed frames, not raw lines, so these are
    written back as JSON (same content, maybe not the same bytes), stamped
    with the store's times moved onto the wall clock.
    """
    mono_now = store.clock()
    for name, record in store.hosts.items():
        builder.add_host(name, record.tags, record.group)
        state = builder.hosts[name]
        seen = wall_now - (mono_now - record.last_frame_at) if record.last_frame_at is not None else wall_now
        if record.hello is not None:
            state.frames[b"hello"] = (round(seen, 6), record.hello.model_dump_json(by_alias=True).encode())
        if record.sample is not None:
            # Its XIDs are in record.events (de-duplicated there): they are seeded from there, once.
            sample = record.sample.model_copy(update={"events": []})
            state.frames[b"sample"] = (round(seen, 6), sample.model_dump_json(by_alias=True).encode())
        # The XIDs the dashboard already knows, oldest first: each was sent once, before the recording.
        state.keep_events(round(seen, 6), list(record.events), None)
        if record.down_since is not None:
            down = wall_now - (mono_now - record.down_since)
            state.down = (round(max(down, seen), 6), record.error or "down")


class Recorder:
    """Records a running fleet from ``start`` until ``close``; close writes the index, so the file is whole."""

    def __init__(
        self,
        runner: FleetRunner,
        path: Path,
        title: str,
        clock: Callable[[], float] = time.time,
        chunk_seconds: float = CHUNK_SECONDS,
        unique: bool | None = None,
    ) -> None:
        """``path`` is never overwritten: FileExistsError, or with ``unique`` the next free name
        (``path-2``...; see :attr:`path`). ``unique`` defaults to whether ``path`` is in
        :func:`recordings_dir`, where gputui chooses the names (ctrl+r)."""
        self.runner = runner
        self.clock = clock
        self.builder = ChunkBuilder(chunk_seconds)
        seed_from_store(self.builder, runner.store, clock())
        if unique is None:
            unique = path.parent == recordings_dir()
        self.file = RecordingFile(path, title, self.builder.hosts, runner.store.stale_after, unique=unique)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gputui-record")
        self.error: str | None = None  # the first write that failed (disk full...), for the operator
        self.closed = False

    @classmethod
    def start(cls, runner: FleetRunner, path: Path, title: str, **options: Any) -> Recorder:
        """Open ``path`` and listen to every link of ``runner`` from now on
        (options: ``clock``, ``chunk_seconds``, ``unique``)."""
        recorder = cls(runner, path, title, **options)
        runner.taps.append(recorder)
        return recorder

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def info(self) -> Written:
        return self.file.info

    def _host(self, host: str, now: float) -> None:
        if host not in self.builder.hosts:  # added while recording
            record = self.runner.store.hosts.get(host)
            self.builder.add_host(host, record.tags if record else (), record.group if record else None)
        if self.builder.due(now):
            self._flush()

    def line(self, host: str, data: bytes) -> None:
        if not self.closed:
            now = round(self.clock(), 6)  # as stored: what is read back is exactly what was written
            self._host(host, now)
            self.builder.frame(host, now, data)

    def ended(self, host: str, error: str) -> None:
        if not self.closed:
            now = round(self.clock(), 6)
            self._host(host, now)
            self.builder.down(host, now, error)

    def _flush(self) -> None:
        chunk = self.builder.cut()
        if chunk is not None:
            self.pool.submit(self.file.write, chunk).add_done_callback(self._note_failure)

    def _note_failure(self, done: Future[None]) -> None:
        exc = done.exception()
        if exc is not None and self.error is None:
            self.error = f"recording to {self.path} failed: {exc}"

    async def close(self) -> Written:
        """Stop listening, write what is buffered, the index and the footer."""
        if self in self.runner.taps:
            self.runner.taps.remove(self)
        if not self.closed:
            self.closed = True
            self._flush()
            try:
                await asyncio.wrap_future(self.pool.submit(self.file.close))
            except OSError as exc:
                self.error = self.error or f"recording to {self.path} failed: {exc}"
            self.pool.shutdown(wait=False)
        return self.file.info
