"""Recording the fleet and reading it back: what an operator relies on after an incident.

Recordings here come from the demo's real simulated hosts (in-process runner
and recorder, or the real ``gputui record`` command), or, where a long
recording is needed quickly, from the agent's real sampler on a simulated
clock written through the recorder's own chunk builder and file writer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gputui.cli import build_parser
from gputui.config import Config
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore, HostState
from gputui.frame_decoder import FrameDecoder
from gputui.frames import Sample, XidEvent, parse_frame
from gputui.protocol import PROTOCOL_VERSION
from gputui.record import cli as record_cli
from gputui.record import format as fmt
from gputui.record.format import Entry, RecordingError
from gputui.record.player import ReplayPlayer, parse_offset
from gputui.record.reader import Recording
from gputui.record.recorder import Recorder, default_path, recordings_dir
from gputui.record.writer import EVENTS_KEPT_PER_XID, ChunkBuilder, PendingChunk, RecordingFile
from gputui.sources import fleet as fleet_sources
from gputui.sources.demo import DemoFleet
from gputui.sources.demo_feed import host_names
from gputui.sources.fleet import DemoSpec, Fleet
from tests.recordings import EPOCH, Seen, corrupt, record_demo, seqs, until, write_sim_recording
from tests.waiting import wait_until


def frames(rec: Recording) -> list[tuple[str, float, bytes]]:
    return [(e.host, e.t, e.data) for e in rec.entries() if e.kind == fmt.FRAME]


async def test_a_recording_reads_back_the_same_frames_in_order_with_their_times(tmp_path: Path) -> None:
    path = tmp_path / "incident.gtrec"
    store, seen = await record_demo(path, chunk_seconds=0.3)
    rec = Recording.open(path)
    assert rec.complete and rec.problems() == []
    assert len(rec.chunks) > 1, "short chunks: the test should cross chunk boundaries"
    assert frames(rec) == seen.lines
    assert [h for h, _, _ in rec.hosts] == list(store.hosts)
    assert rec.meta["title"] == "test fleet"


async def test_a_replay_ends_in_the_state_the_live_store_ended_in(tmp_path: Path) -> None:
    path = tmp_path / "incident.gtrec"
    live, seen = await record_demo(path, chunk_seconds=0.3)
    player = ReplayPlayer(Recording.open(path))
    player.seek(player.recording.ended_at)
    replayed = player.store
    assert isinstance(replayed, FleetStore) and list(replayed.hosts) == list(live.hosts)
    for name, want in live.hosts.items():
        got = replayed.hosts[name]
        assert got.hello == want.hello and got.sample == want.sample and got.error == want.error
        assert len(got.gpus()) == len(want.gpus()) == 2
        assert got.state(player.now()) is HostState.LIVE
        last = max(t for h, t, _ in seen.lines if h == name)
        assert got.last_frame_at == last, "ages in a replay are measured from the recorded arrival times"
        assert got.history.keys() == want.history.keys()
        for index, hist in want.history.items():
            assert got.history[index].series("util_pct", 60) == hist.series("util_pct", 60)


def expected_at(rec: Recording, t: float) -> dict[str, tuple[float, Sample | None]]:
    """Per host, from the recorded entries alone: the last arrival time and the latest sample at ``t``."""
    out: dict[str, tuple[float, Sample | None]] = {}
    for e in rec.entries():
        if e.t > t:
            break
        frame = parse_frame(e.data)
        sample = frame if isinstance(frame, Sample) else out.get(e.host, (0.0, None))[1]
        out[e.host] = (e.t, sample)
    return out


@pytest.mark.parametrize("offset", [0.0, 47.5, 61.0, 119.0])
def test_seeking_shows_the_fleet_as_it_was_at_that_moment(tmp_path: Path, offset: float) -> None:
    path = tmp_path / "long.gtrec"
    write_sim_recording(path, hosts=4, seconds=120)
    rec = Recording.open(path)
    player = ReplayPlayer(rec)
    at = rec.started_at + offset
    player.seek(rec.ended_at)
    player.seek(at)  # backwards: rebuilt from the keyframe before ``at``
    want = expected_at(rec, at)
    assert set(player.store.hosts) == set(host_names(4))
    for name in set(host_names(4)) - set(want):
        assert player.store.hosts[name].state(player.now()) is HostState.CONNECTING, "nothing from it yet"
    for name, (last_t, sample) in want.items():
        record = player.store.hosts[name]
        assert record.sample == sample
        assert record.last_frame_at == last_t
        assert record.tags == ("rack-a",)
        assert record.hello is not None and len(record.hello.gpus) == 4
        assert record.age_s(player.now()) == pytest.approx(at - last_t)


def test_a_short_step_forward_plays_on_and_keeps_the_history(tmp_path: Path) -> None:
    path = tmp_path / "long.gtrec"
    write_sim_recording(path, hosts=2, seconds=90)
    rec = Recording.open(path)
    player = ReplayPlayer(rec)
    player.seek(rec.started_at + 30)
    player.seek_by(25)  # crosses a chunk boundary without a rebuild
    history = player.store.hosts["gpu-01"].history[0].series("util_pct", 60)
    assert sum(v is not None for v in history) >= 50, "the samples before the step are still in the chart"
    want = expected_at(rec, rec.started_at + 55)
    assert player.store.hosts["gpu-01"].sample == want["gpu-01"][1]


def test_a_recording_stays_small(tmp_path: Path) -> None:
    """The size target (50 MB per hour of 64 hosts x 8 GPUs) scaled down: 4 hosts x 4 GPUs for 2 min."""
    path = tmp_path / "long.gtrec"
    write_sim_recording(path, hosts=4, seconds=120)
    per_host_hour = path.stat().st_size / 4 / 120 * 3600
    assert per_host_hour < 0.6e6, f"{per_host_hour / 1e6:.2f} MB per host-hour of 4-GPU hosts"


async def test_a_link_that_ends_is_recorded_and_replays_as_down(tmp_path: Path) -> None:
    path = tmp_path / "outage.gtrec"
    fleet = DemoFleet(2, 2, "healthy", 3, 0.1)
    store = FleetStore()
    runner = FleetRunner(fleet.sources(), store)
    seen = Seen()
    recorder = Recorder.start(runner, path, "outage", clock=seen.clock, chunk_seconds=0.3)
    runner.taps.append(seen)
    runner.start()
    try:
        await until(store, lambda: seqs(store, 3), "samples from both hosts")
        fleet.feeds[0].kill()  # the hosts' feed dies: both links end
        await until(store, lambda: all(r.down_since is not None for r in store.hosts.values()), "both hosts down")
        down_errors = {n: r.error for n, r in store.hosts.items()}
        await until(store, lambda: all(r.down_since is None for r in store.hosts.values()), "both hosts back")
    finally:
        await runner.stop()
        await recorder.close()
        await fleet.close()
    rec = Recording.open(path)
    ends = [(e.host, e.t, json.loads(e.data)) for e in rec.entries() if e.kind == fmt.DOWN]
    assert ends == seen.ends and len(ends) == 2
    player = ReplayPlayer(rec)
    player.seek(max(t for _, t, _ in ends))
    for name, error in down_errors.items():
        assert player.store.hosts[name].state(player.now()) is HostState.DOWN
        assert player.store.hosts[name].error == error
    player.seek(rec.ended_at)
    assert all(r.state(player.now()) is HostState.LIVE for r in player.store.hosts.values())


# -- damaged and wrong files ------------------------------------------------------------------


def test_a_recording_cut_short_opens_up_to_the_cut(tmp_path: Path) -> None:
    whole = tmp_path / "whole.gtrec"
    write_sim_recording(whole, hosts=2, seconds=100)
    original = Recording.open(whole)
    last = original.chunks[-1]
    cut = tmp_path / "cut.gtrec"
    cut.write_bytes(whole.read_bytes()[: last.offset + 100])  # the recorder died writing its last chunk
    rec = Recording.open(cut)
    assert not rec.complete and len(rec.chunks) == len(original.chunks) - 1
    (problem,) = rec.problems()
    assert problem == (
        f"cut.gtrec: recording ends at {fmt.clock_time(original.chunks[-2].t_last)}: the file was cut short "
        f"(its last chunk is incomplete at byte {last.offset}; no index)"
    )
    kept = frames(rec)
    assert kept == frames(original)[: len(kept)] and kept


def test_a_recording_without_its_index_loses_nothing(tmp_path: Path) -> None:
    whole = tmp_path / "whole.gtrec"
    write_sim_recording(whole, hosts=2, seconds=50)
    original = Recording.open(whole)
    cut = tmp_path / "noindex.gtrec"
    end = original.chunks[-1].offset + fmt.HEADER_SIZE + _length(original, -1)
    cut.write_bytes(whole.read_bytes()[:end])
    rec = Recording.open(cut)
    assert frames(rec) == frames(original)
    assert rec.problems() == [
        f"noindex.gtrec: recording ends at {fmt.clock_time(original.ended_at)}: "
        "no index after its last whole chunk: the file was cut short there, or its index is damaged (nothing recorded is lost)"
    ]


def _length(rec: Recording, i: int) -> int:
    header = fmt.BlockHeader.unpack(rec.data[rec.chunks[i].offset : rec.chunks[i].offset + fmt.HEADER_SIZE])
    assert header is not None
    return header.length


def test_the_last_chunks_damaged_are_named_and_the_rest_replays(tmp_path: Path) -> None:
    path = tmp_path / "bad.gtrec"
    write_sim_recording(path, hosts=2, seconds=100)
    original = Recording.open(path)
    chunks, want = original.chunks, frames(original)
    original.close()
    corrupt(path, [chunks[-2].offset, chunks[-1].offset])
    rec = Recording.open(path)
    assert rec.problems() == [
        f"bad.gtrec: recording ends at {fmt.clock_time(chunks[-3].t_last)}: "
        f"the last 2 chunks are damaged (CRC mismatch at byte {chunks[-2].offset})"
    ]
    kept = frames(rec)
    assert kept == want[: len(kept)] and len(kept) == sum(c.count for c in chunks[:-2])
    player = ReplayPlayer(rec)
    player.seek(rec.ended_at)
    assert all(r.state(player.now()) is HostState.LIVE for r in player.store.hosts.values())


@pytest.mark.parametrize("index", [True, False])
def test_a_damaged_chunk_in_the_middle_costs_only_its_own_stretch(tmp_path: Path, index: bool) -> None:
    path = tmp_path / "hole.gtrec"
    write_sim_recording(path, hosts=2, seconds=100)
    original = Recording.open(path)
    hole, want, count = original.chunks[2], frames(original), len(original.chunks)
    original.close()
    if not index:  # and the recorder was killed: the reader walks the blocks and steps over the hole
        path.write_bytes(path.read_bytes()[: path.stat().st_size - fmt.FOOTER_SIZE - 200])
    corrupt(path, [hole.offset])
    rec = Recording.open(path)
    problems = rec.problems()
    assert problems[0] == (
        f"hole.gtrec: {fmt.clock_time(hole.t_first)}–{fmt.clock_time(hole.t_last)} is missing: "
        f"a chunk is damaged (CRC mismatch at byte {hole.offset})"
    )
    assert len(rec.chunks) == count - 1 and rec.chunks[2].after_gap
    assert frames(rec) == [f for f in want if not hole.t_first <= f[1] <= hole.t_last]
    player = ReplayPlayer(rec)
    player.seek(rec.ended_at)
    player.seek(hole.t_first - 1)
    player.seek_by(30)  # plays on across the hole: the next chunk's keyframe fills it in
    at = player.now()
    for name, (_, sample) in expected_at(rec, at).items():
        assert player.store.hosts[name].sample == sample


def test_files_that_are_not_recordings_are_refused_by_name(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(RecordingError) as caught:
        Recording.open(text)
    assert str(caught.value).startswith(f"{text}: not a gputui recording (it starts with b'hello\\n'")
    empty = tmp_path / "empty.gtrec"
    empty.write_bytes(b"")
    with pytest.raises(RecordingError, match=r"empty\.gtrec: the file is empty: not a gputui recording"):
        Recording.open(empty)
    header_only = tmp_path / "stub.gtrec"
    header_only.write_bytes(fmt.FILE_MAGIC + b"\x00" * 10)
    with pytest.raises(RecordingError, match=r"stub\.gtrec: the recording's header block is damaged"):
        Recording.open(header_only)
    with pytest.raises(RecordingError, match=r"missing\.gtrec: cannot read"):
        Recording.open(tmp_path / "missing.gtrec")


def entries_of(path: Path) -> list[Entry]:
    rec = Recording.open(path)
    return list(rec.entries())


def gputui(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gputui", *args], capture_output=True, text=True, timeout=timeout)


def test_the_record_command_writes_a_whole_recording(tmp_path: Path) -> None:
    path = tmp_path / "cli.gtrec"
    done = gputui("record", "--demo", "--hosts", "2", "--gpus", "2", "--interval", "0.2", "--duration", "2", "-o", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"recording 2 hosts to {path} for 2 s\n")
    assert f"wrote {path}: 2 hosts," in done.stdout
    rec = Recording.open(path)
    assert rec.complete and rec.problems() == []
    got = entries_of(path)
    assert {e.host for e in got} == {"gpu-01", "gpu-02"}
    decoders: dict[str, FrameDecoder] = {}  # the demo's hosts send changes: each decoded in its own stream
    assert all(decoders.setdefault(e.host, FrameDecoder()).frame(e.data) for e in got)
    assert any(e.data.startswith(b'{"type":"delta"') for e in got)
    again = gputui("record", "--demo", "--duration", "1", "-o", str(path))
    assert again.returncode == 2 and f"{path} exists: a recording is never overwritten" in again.stderr


def children_in_their_own_group(pid: int) -> list[int]:
    """The processes ``pid`` (a process group's leader) started, once each is in a process group
    of its own, where a terminal's Ctrl-C to ``pid``'s group does not reach it (else none)."""
    groups = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # state, ppid, pgrp, ...
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            groups[int(stat.parent.name)] = int(fields[2])
    return list(groups) if groups and pid not in groups.values() else []


def test_ctrl_c_closes_the_recording_properly(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group: the recording closes
    whole, and nothing prints a traceback (the demo's feeds, in a group of their own, are closed
    by the recorder, not interrupted)."""
    path = tmp_path / "stopped.gtrec"
    argv = [sys.executable, "-m", "gputui", "record", "--demo", "--hosts", "2", "--interval", "0.2", "-o", str(path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == f"recording 2 hosts to {path} until Ctrl-C\n"
            wait_until(lambda: children_in_their_own_group(proc.pid), "the demo's feed up in its own group", timeout=30)
            os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
            out, err = proc.communicate(timeout=30)
        finally:  # a failure above must not leave a recorder running until Ctrl-C
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert err == ""
    assert f"wrote {path}" in out
    assert Recording.open(path).complete


def test_record_o_makes_no_folder_and_says_why_it_cannot_write(tmp_path: Path) -> None:
    """A typo in -o's folder is refused before anything starts, not made into new folders."""
    missing = tmp_path / "no-such-folder" / "x.gtrec"
    done = gputui("record", "--demo", "--hosts", "1", "--duration", "1", "-o", str(missing))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == f"gputui: cannot write {missing}: {missing.parent} does not exist"
    assert not missing.parent.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    inside = gputui("record", "--demo", "--hosts", "1", "--duration", "1", "-o", str(a_file / "x.gtrec"))
    assert inside.returncode == 2
    assert inside.stderr.strip() == f"gputui: cannot write {a_file / 'x.gtrec'}: {a_file} is not a folder"
    unwritable = Path("/proc/x.gtrec")  # refused even to root, which every folder's permissions let by
    denied = gputui("record", "--demo", "--hosts", "1", "--duration", "1", "-o", str(unwritable))
    assert denied.returncode == 2 and denied.stderr.strip().startswith(f"gputui: cannot write {unwritable}: ")
    assert "Traceback" not in denied.stderr


def test_record_of_a_config_without_hosts_is_refused(tmp_path: Path) -> None:
    config, out = tmp_path / "empty.toml", tmp_path / "nothing.gtrec"
    config.write_text("")
    done = gputui("record", "--config", str(config), "--duration", "1", "-o", str(out))
    assert done.returncode == 2 and "lists no hosts: add a [[hosts]] table" in done.stderr
    assert not out.exists()


def test_a_start_that_is_no_clock_time_is_called_so(tmp_path: Path) -> None:
    """99:99 was read as a clock time rolled into the next hours, then called 'not in the recording'."""
    path = tmp_path / "short.gtrec"
    write_sim_recording(path, hosts=1, seconds=20)
    for bad in ("99:99", "23:60", "12:00:61"):
        with pytest.raises(ValueError, match=f"^{bad} is not a clock time: hours 0 to 23, minutes and seconds 0 to 59$"):
            parse_offset(bad, Recording.open(path))


def test_replay_info_reports_damage_and_refuses_non_recordings(tmp_path: Path) -> None:
    path = tmp_path / "bad.gtrec"
    write_sim_recording(path, hosts=2, seconds=60)
    good = gputui("replay", str(path), "--info")
    assert good.returncode == 0 and "2 hosts" in good.stdout and good.stderr == ""
    corrupt(path, [Recording.open(path).chunks[-1].offset])
    bad = gputui("replay", str(path), "--info")
    assert bad.returncode == 1 and "the last chunk is damaged (CRC mismatch at byte" in bad.stderr
    junk = tmp_path / "junk.gtrec"
    junk.write_text("not a recording")
    refused = gputui("replay", str(junk))
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"gputui: {junk}: not a gputui recording")
    start = gputui("replay", str(path), "--start", "2h")
    assert start.returncode == 2 and "'2h' is outside the recording (0:" in start.stderr


# -- XIDs across keyframes, seeding, file names, rebuilds -----------------------


def hello_frame(host: str, t: float, gpus: int = 2) -> dict[str, object]:
    boards = [{"index": i, "name": "H100", "temp_slowdown_c": 89, "temp_shutdown_c": 92} for i in range(gpus)]
    return {"type": "hello", "v": PROTOCOL_VERSION, "t": t, "agent_version": "0.1", "host": host, "gpus": boards}


def sample_frame(t: float, seq: int, events: list[dict[str, object]] | None = None, gpus: int = 2) -> dict[str, object]:
    frame: dict[str, object] = {"type": "sample", "v": PROTOCOL_VERSION, "t": t, "seq": seq}
    frame["gpus"] = [{"index": i, "util_pct": 80, "temp_c": 60} for i in range(gpus)]
    if events is not None:
        frame["events"] = events
    return frame


def xid(number: int, gpu: int, t: float, source: str = "nvml") -> dict[str, object]:
    return {"xid": number, "gpu": gpu, "t": t, "source": source}


def storm_frames(seconds: int = 300) -> list[tuple[float, bytes]]:
    """An XID 95 on GPU 0 at +10 s, then a job faulting in a loop: an XID 13 on GPU 1 every second from +20 s to +59 s."""
    out = [(EPOCH, json.dumps(hello_frame("gpu-01", EPOCH)).encode())]
    for s in range(1, seconds + 1):
        events = [xid(95, 0, EPOCH + s)] if s == 10 else [xid(13, 1, EPOCH + s)] if 20 <= s < 60 else None
        out.append((EPOCH + s, json.dumps(sample_frame(EPOCH + s, s, events)).encode()))
    return out


def write_frames(path: Path, lines: list[tuple[float, bytes]], host: str = "gpu-01") -> None:
    builder = ChunkBuilder(20.0)
    builder.add_host(host)
    out = RecordingFile(path, "storm", builder.hosts)
    for t, line in lines:
        if builder.due(t) and (chunk := builder.cut()) is not None:
            out.write(chunk)
        builder.frame(host, t, line)
    if (chunk := builder.cut()) is not None:
        out.write(chunk)
    out.close()


def live_store(lines: list[tuple[float, bytes]], until_t: float, host: str = "gpu-01") -> FleetStore:
    """What the dashboard's store held at ``until_t``, fed the same frames."""
    now = [0.0]
    store = FleetStore(clock=lambda: now[0])
    store.add_host(host)
    for t, line in lines:
        if t > until_t:
            break
        now[0] = t
        store.apply(host, parse_frame(line))
    return store


def kept(events: list[XidEvent]) -> list[XidEvent]:
    """``events`` as a keyframe keeps them: the newest few of each GPU and XID, in their order."""
    out: list[XidEvent] = []
    for e in reversed(events):
        if sum(1 for o in out if (o.gpu, o.xid) == (e.gpu, e.xid)) < EVENTS_KEPT_PER_XID:
            out.append(e)
    return out[::-1]


@pytest.mark.parametrize("offset", [40.5, 250.0])
def test_an_xid_storm_does_not_push_an_earlier_xid_out_of_a_seek(tmp_path: Path, offset: float) -> None:
    path = tmp_path / "storm.gtrec"
    lines = storm_frames()
    write_frames(path, lines)
    rec = Recording.open(path)
    at = EPOCH + offset  # 40.5: the keyframe's latest sample (+39 s) carries an XID 13 itself
    assert any(e.kind == fmt.KEY_EVENTS for e in rec.chunk(rec.chunk_for(at)).keyframe)
    player = ReplayPlayer(rec)
    player.seek(rec.ended_at)
    player.seek(at)  # rebuilt from the keyframe before ``at``
    live = live_store(lines, at)
    got, want = player.store.hosts["gpu-01"], live.hosts["gpu-01"]
    assert [(e.xid, e.gpu) for e in got.events].count((95, 0)) == 1, "the critical XID survives the storm"
    # What live had just before the keyframe, bounded as a keyframe keeps it, then what arrived since.
    before = list(live_store(lines, rec.chunks[rec.chunk_for(at)].t_first - 1e-3).hosts["gpu-01"].events)
    since = [e for e in want.events if e not in before]
    assert list(got.events) == kept(before) + since, "the same XIDs as live, in order, none twice"
    assert got.sample == want.sample and got.sample is not None and len(got.gpus()) == 2
    assert got.hello == want.hello
    assert got.last_frame_at == want.last_frame_at == EPOCH + int(offset)


def test_a_keyframe_drops_xids_older_than_a_day(tmp_path: Path) -> None:
    path = tmp_path / "old.gtrec"
    day = 24 * 3600
    lines = [(EPOCH, json.dumps(hello_frame("gpu-01", EPOCH)).encode())]
    lines.append((EPOCH + 1, json.dumps(sample_frame(EPOCH + 1, 1, [xid(79, 0, EPOCH - day - 5, "kernel")])).encode()))
    lines.append((EPOCH + 2, json.dumps(sample_frame(EPOCH + 2, 2, [xid(95, 1, EPOCH + 2)])).encode()))
    lines += [(EPOCH + s, json.dumps(sample_frame(EPOCH + s, s)).encode()) for s in range(3, 60)]
    write_frames(path, lines)
    rec = Recording.open(path)
    player = ReplayPlayer(rec)
    player.seek(rec.ended_at)
    player.seek(rec.ended_at - 1)  # rebuilt from the last keyframe
    assert [(e.xid, e.gpu) for e in player.store.hosts["gpu-01"].events] == [(95, 1)]


async def test_a_recording_started_from_the_dashboard_keeps_the_xids_it_already_knew(tmp_path: Path) -> None:
    mono = [100.0]
    store = FleetStore(clock=lambda: mono[0])
    store.add_host("gpu-01", ("rack-a",))
    wall0 = EPOCH - 300  # the dashboard ran for 5 min before ctrl+r
    samples = [(0, None), (5, [xid(95, 0, wall0 + 5)]), (6, [xid(95, 0, wall0 + 4.5, "kernel")])]  # the same XID twice
    samples += [(10 + i, [xid(13, 1, wall0 + 10 + i)]) for i in range(8)] + [(30, [xid(79, 1, wall0 + 30)]), (31, None)]
    store.apply("gpu-01", parse_frame(json.dumps(hello_frame("gpu-01", wall0))))
    for seq, (s, events) in enumerate(samples):
        mono[0] = 100.0 + s
        store.apply("gpu-01", parse_frame(json.dumps(sample_frame(wall0 + s, seq, events))))
    known = list(store.hosts["gpu-01"].events)
    assert len(known) == 10, "the store took the kernel log's copy of the XID 95 as the same one"
    mono[0] = 100.0 + 300
    wall = [EPOCH]
    path = tmp_path / "ctrl-r.gtrec"
    recorder = Recorder.start(FleetRunner([], store), path, "live", clock=lambda: wall[0])
    for i in range(1, 4):
        wall[0] = EPOCH + i
        recorder.line("gpu-01", json.dumps(sample_frame(EPOCH + i, 100 + i)).encode())
    await recorder.close()
    rec = Recording.open(path)
    player = ReplayPlayer(rec)
    for at, seq in ((rec.started_at, 101), (rec.ended_at, 103)):
        player.seek(at)
        got = player.store.hosts["gpu-01"]
        assert list(got.events) == kept(known), f"at {at - EPOCH:+.0f} s"
        assert got.sample is not None and got.sample.events == [] and len(got.gpus()) == 2
        assert got.tags == ("rack-a",)
        assert got.sample.seq == seq


async def test_two_recordings_in_the_same_second_get_two_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first_path = default_path(EPOCH + 0.2)
    first = RecordingFile(first_path, "first", {})
    first.write(PendingChunk(b"", 0, EPOCH, EPOCH + 1, frozenset()))
    first.close()
    before = first_path.read_bytes()
    second_path = default_path(EPOCH + 0.7)  # ctrl+r, ctrl+r within the same second
    assert second_path == first_path.with_name(first_path.stem + "-2.gtrec")
    with pytest.raises(FileExistsError):
        RecordingFile(first_path, "clobber", {})
    # Two dashboards that both chose the same name: the one that comes second takes the next free one.
    recorder = Recorder(FleetRunner([], FleetStore()), first_path, "second")
    assert recorder.path == second_path and recorder.path.parent == recordings_dir()
    await recorder.close()
    assert first_path.read_bytes() == before
    assert Recording.open(first_path).meta["title"] == "first"
    assert Recording.open(second_path).meta["title"] == "second"
    assert default_path(EPOCH).name == first_path.stem + "-3.gtrec"


async def test_an_output_file_made_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "taken.gtrec"
    path.write_bytes(b"someone else's")
    closed: list[bool] = []

    async def closing() -> None:
        closed.append(True)

    with pytest.raises(FileExistsError):
        await record_cli.record_fleet(Fleet(FleetStore(), [], Config(), "t", closers=[closing]), path, 1.0)
    assert closed == [True] and path.read_bytes() == b"someone else's"


def test_record_o_refuses_a_file_that_appears_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "raced.gtrec"

    real_open = fleet_sources.open_fleet

    def sources(path_asked: Path | None, demo: DemoSpec) -> Fleet:
        fleet = real_open(path_asked, demo)
        path.write_bytes(b"written meanwhile")  # between the exists() check and the open
        return fleet

    monkeypatch.setattr(fleet_sources, "open_fleet", sources)
    args = build_parser().parse_args(["record", "--demo", "--hosts", "1", "--duration", "1", "-o", str(path)])
    assert record_cli.run(args) == 2
    assert f"gputui: {path} exists: a recording is never overwritten" in capsys.readouterr().err
    assert path.read_bytes() == b"written meanwhile"


def test_on_rebuild_is_told_after_a_seek_back_or_far_forward(tmp_path: Path) -> None:
    path = tmp_path / "long.gtrec"
    write_sim_recording(path, hosts=2, seconds=300)
    rec = Recording.open(path)
    player = ReplayPlayer(rec)
    seen: list[tuple[float, int | None]] = []

    def rebuilt() -> None:
        sample = player.store.hosts["gpu-01"].sample
        seen.append((player.now(), sample.seq if sample else None))

    player.on_rebuild.append(rebuilt)
    start = rec.started_at
    player.seek(start + 60)  # from the start: a short step plays on
    player.seek(start + 90)
    assert seen == []
    player.seek(start + 45)  # backwards
    want = expected_at(rec, start + 45)["gpu-01"][1]
    assert want is not None and seen == [(start + 45, want.seq)], "told once the store shows +45 s"
    player.seek(start + 280)  # far forwards
    assert len(seen) == 2 and seen[-1][0] == start + 280
