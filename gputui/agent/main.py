"""``gputui agent``: sample NVML on an interval and write NDJSON frames.

Frames go to stdout, one JSON object a line; commands come on stdin, one
JSON object a line. Diagnostics go to stderr. The agent exits when its
reader goes away (a broken stdout), so an agent never outlives the
connection that started it.

With ``--metrics-listen`` the agent is a Prometheus exporter instead (see
:mod:`gputui.agent.exporter`): it serves its latest sample at ``/metrics``
and writes no frames unless ``--frames`` asks for them too; its errors go to
stderr as lines, and it runs until stopped (SIGTERM, SIGINT).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, TextIO, Union

from gputui.agent import AGENT_VERSION
from gputui.agent.changes import ChangeEncoder
from gputui.agent.kernel_log import read_host_kernel_log
from gputui.agent.ledger import DEFAULT_STATE_DIR, LedgerError, LedgerView, choose_state_dir, existing_state_dir
from gputui.agent.sampler import Frame, Sampler, error_frame
from gputui.agent.stop_signal import StopSignal
from gputui.protocol import KEYFRAME_EVERY, MAX_FRAME_BYTES, PROTOCOL_VERSION

if TYPE_CHECKING:  # imported when asked for: a plain agent needs no HTTP server
    from gputui.agent.exporter import MetricsServer

# Seconds between samples. The dashboard's config allows 0.1 to 60 (gputui/config.py, Config.interval,
# which this module cannot import: a GPU host has no pydantic); the agent also runs faster for the tests,
# down to MIN_INTERVAL_S, but never at 0, which would spin.
MIN_INTERVAL_S = 0.01
MAX_INTERVAL_S = 60.0


def count_arg(text: str) -> int:
    """``--count``: a whole number, 0 or more (a negative count ran as one sample)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number, got %r" % text) from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (run until stopped) or more, got %s" % text)
    return value


def interval_arg(text: str) -> float:
    """``--interval``: a usage error outside MIN_INTERVAL_S..MAX_INTERVAL_S (NaN included)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text) from None
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError("must be between %g and %g seconds, got %s" % (MIN_INTERVAL_S, MAX_INTERVAL_S, text))
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gputui agent", description="Stream GPU telemetry as NDJSON frames, or serve it to Prometheus (--metrics-listen)."
    )
    p.add_argument(
        "--interval",
        type=interval_arg,
        default=1.0,
        help="seconds between samples, %g to %g (default 1.0)" % (MIN_INTERVAL_S, MAX_INTERVAL_S),
    )
    p.add_argument("--once", action="store_true", help="write hello and one sample, then exit")
    p.add_argument("--count", type=count_arg, default=0, help="exit after this many samples (0: run until stopped)")
    p.add_argument("--sim", metavar="SCENARIO", help="simulated GPUs instead of NVML (see `gputui demo --help`)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated scenario")
    p.add_argument("--gpus", type=int, default=None, help="number of simulated GPUs (default: the scenario's)")
    p.add_argument(
        "--sim-processes",
        choices=("standin", "synthetic"),
        default="standin",
        help="simulated GPU processes: real stand-in processes read through /proc, or supplied facts",
    )
    p.add_argument("--host-name", help="host name to report (default: this machine's)")
    p.add_argument("--act", action="store_true", help="read one action request (JSON) on stdin, answer on stdout, exit")
    p.add_argument(
        "--state-dir",
        help="where the ledger lives (default %s, or ~/.local/state/gputui when that is not writable)" % DEFAULT_STATE_DIR,
    )
    p.add_argument(
        "--metrics-listen",
        metavar="[HOST:]PORT",
        help="serve the latest sample at http://HOST:PORT/metrics for Prometheus, in dcgm-exporter's metric names "
        "and labels; a bare PORT listens on 127.0.0.1 only (give 0.0.0.0:PORT for every interface). "
        "The agent then writes no frames to stdout and reads no commands, as a service runs it; add --frames for both",
    )
    p.add_argument(
        "--frames",
        action="store_true",
        help="with --metrics-listen: write frames to stdout and read commands on stdin as well",
    )
    p.add_argument(
        "--changes",
        action="store_true",
        help="write samples as changes: a whole sample (a keyframe) first and every --keyframe-every samples, "
        "in between only what moved (a dashboard asks for this; it reads either form)",
    )
    p.add_argument(
        "--keyframe-every",
        type=int,
        default=KEYFRAME_EVERY,
        help="with --changes: samples from one keyframe to the next (default %d)" % KEYFRAME_EVERY,
    )
    p.add_argument("--stats", action="store_true", help="print NVML calls and CPU time per sample to stderr at exit")
    p.add_argument("--version", action="version", version="gputui-agent %s (protocol %d)" % (AGENT_VERSION, PROTOCOL_VERSION))
    return p


class FrameWriter:
    """Serialises frames from the sampling loop and the command thread."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.bytes = 0
        self.frames = 0

    def write(self, frame: Frame) -> bool:
        """Write one frame; False when it was too big and an error frame went in its place."""
        line = json.dumps(frame, separators=(",", ":")) + "\n"
        whole = len(line) <= MAX_FRAME_BYTES
        if not whole:
            # The dashboard would cut the connection on this line and meet it
            # again on every reconnect: say what was too big instead.
            line = json.dumps(error_frame(oversized(frame, len(line))), separators=(",", ":")) + "\n"
        with self.lock:
            self.out.write(line)
            self.out.flush()
            self.bytes += len(line)
            self.frames += 1
        return whole


class StderrErrors:
    """The exporter's writer when no frames are wanted: error frames become
    lines on stderr, the rest is dropped (the exporter has them)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.frames = 0

    def write(self, frame: Frame) -> bool:
        if frame.get("type") == "error":
            sys.stderr.write("gputui agent: %s\n" % frame.get("message"))
            sys.stderr.flush()
        return True


Writer = Union[FrameWriter, StderrErrors]


def oversized(frame: Frame, size: int) -> str:
    """Which parts of a frame made it too big, largest first."""
    parts = sorted(((len(json.dumps(v)), k) for k, v in frame.items()), reverse=True)
    named = ", ".join("'%s' %d KiB" % (k, n // 1024) for n, k in parts[:3] if n >= 1024)
    return "a %s frame of %d KiB was not sent (the limit is %d KiB): %s" % (
        frame.get("type", "?"),
        size // 1024,
        MAX_FRAME_BYTES // 1024,
        named or "no one part is large",
    )


def host_name(args: argparse.Namespace) -> str:
    return str(args.host_name or socket.gethostname())


def open_nvml(args: argparse.Namespace, state_dir: Optional[str] = None) -> Any:
    """pynvml, or the simulator; an ``--act`` simulator attaches to the
    streaming agent's stand-ins through the driver state instead of starting its own."""
    if args.sim:
        from gputui.sim.nvml import SimNvml

        processes = "attach" if args.act and state_dir else "synthetic" if args.act else args.sim_processes
        # A simulated kernel log outlives an agent only in a folder named for it:
        # the default one is shared by every run of a host of that name.
        return SimNvml(
            args.sim,
            seed=args.seed,
            gpus=args.gpus,
            processes=processes,
            state_dir=state_dir,
            host=host_name(args),
            kernel_log=bool(args.state_dir),
        )
    import pynvml

    return pynvml


def init_failure(nvml: Any, exc: Exception) -> str:
    """Why NVML would not start, and what the operator can do about it."""
    code = getattr(exc, "value", None)
    hints = {
        nvml.NVML_ERROR_LIBRARY_NOT_FOUND: "libnvidia-ml.so was not found: is the NVIDIA driver installed on this host?",
        nvml.NVML_ERROR_DRIVER_NOT_LOADED: "the NVIDIA kernel driver is not loaded (check `lsmod | grep nvidia`)",
        nvml.NVML_ERROR_NO_PERMISSION: "no permission to open the GPU device files (/dev/nvidia*)",
        nvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: "driver library and kernel module versions differ: reload the driver or reboot",
    }
    # str() of a pynvml error needs no library for the codes it knows.
    return "NVML initialisation failed (%s): %s" % (exc, hints.get(code, "error code %s" % code))


def handle_command(line: str) -> Frame:
    """Commands are acknowledged or refused; actions arrive in a later version."""
    try:
        cmd = json.loads(line)
        if not isinstance(cmd, dict):
            raise ValueError("a command is a JSON object")
    except ValueError as exc:
        return {"type": "result", "v": PROTOCOL_VERSION, "id": None, "ok": False, "error": "bad command: %s" % exc}
    name = cmd.get("cmd")
    if name == "ping":
        return {"type": "result", "v": PROTOCOL_VERSION, "id": cmd.get("id"), "ok": True, "t": round(time.time(), 3)}
    return {
        "type": "result",
        "v": PROTOCOL_VERSION,
        "id": cmd.get("id"),
        "ok": False,
        "error": "unknown command: %r" % (name,),
    }


def read_commands(stream: TextIO, writer: FrameWriter) -> None:
    try:
        for line in stream:
            if line.strip():
                writer.write(handle_command(line))
    except (OSError, ValueError):
        return


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.keyframe_every < 1:
        return usage_error("--keyframe-every must be at least 1")
    if args.frames and not args.metrics_listen:
        return usage_error("--frames goes with --metrics-listen (without it the agent writes frames anyway)")
    if args.act:
        if args.metrics_listen:
            return usage_error("--metrics-listen does not go with --act")
        from gputui.agent.act_main import act_main

        return act_main(args, open_nvml, host_name(args))
    metrics: Optional[MetricsServer] = None
    if args.metrics_listen:
        # Bound before NVML starts: a port in use is said at once, and nothing is left running.
        from gputui.agent.exporter import Latest, ListenError, MetricsServer, parse_listen, stale_after

        try:
            metrics = MetricsServer(*parse_listen(args.metrics_listen), latest=Latest(stale_after(args.interval)))
        except ListenError as exc:
            return usage_error("--metrics-listen: %s" % exc)
    writer: Writer = FrameWriter(sys.stdout) if metrics is None or args.frames else StderrErrors()
    try:
        return sample_loop(args, writer, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def usage_error(message: str) -> int:
    """One line on stderr and exit status 2, as argparse's own usage errors exit."""
    sys.stderr.write("gputui agent: %s\n" % message)
    return 2


def sample_loop(args: argparse.Namespace, writer: Writer, metrics: Optional[MetricsServer]) -> int:
    stop = StopSignal()
    state_dir = streaming_state_dir(args)
    try:
        nvml = open_nvml(args, state_dir=state_dir if args.sim else None)
    except Exception as exc:
        what = "cannot start the simulated GPUs" if args.sim else "cannot load NVML"
        writer.write(error_frame("%s: %s" % (what, exc), fatal=True))
        return 2
    source = "sim:%s" % args.sim if args.sim else "nvml"
    describe = getattr(nvml, "describe_process", None)
    view = LedgerView(state_dir, host_name(args)) if state_dir else None
    # A simulated host reads its simulated kernel log (the Sampler's default).
    kernel_log = None if args.sim else read_host_kernel_log
    # One sample and out: a listening thread would only delay the exit.
    events = "inline" if args.once else "thread"
    summary = view.summary if view else None
    sampler = Sampler(
        nvml, host=args.host_name, source=source, describe=describe, ledger=summary, events=events, kernel_log=kernel_log
    )
    try:
        return run(args, sampler, writer, stop, state_dir, metrics)
    except BrokenPipeError:
        # The reader is gone: exit quietly, without Python's flush warning.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        sampler.close()
        closer = getattr(nvml, "close", None)
        if closer is not None:
            closer()


def run(
    args: argparse.Namespace,
    sampler: Sampler,
    writer: Writer,
    stop: StopSignal,
    state_dir: Optional[str],
    metrics: Optional[MetricsServer] = None,
) -> int:
    """The sampling loop; ``metrics`` (a :class:`gputui.agent.exporter.MetricsServer`)
    is handed each frame, which it formats when scraped: no NVML call of its own."""
    try:
        hello = sampler.hello(args.interval)
    except sampler.caller.nvml.NVMLError as exc:
        writer.write(error_frame(init_failure(sampler.caller.nvml, exc), fatal=True))
        return 2
    changes = ChangeEncoder(args.keyframe_every) if args.changes else None
    writer.write(changes.hello(hello) if changes else hello)
    if metrics is not None:
        metrics.latest.set_hello(hello)
        metrics.start()
        sys.stderr.write("gputui agent: serving metrics at http://%s/metrics\n" % metrics.address)
        sys.stderr.flush()
    if state_dir:
        for problem in reapply_drains(sampler, state_dir, host_name(args)):
            writer.write(error_frame(problem))
    if not args.once and isinstance(writer, FrameWriter):
        threading.Thread(target=read_commands, args=(sys.stdin, writer), daemon=True).start()
    limit = 1 if args.once else args.count
    cpu0 = time.process_time()
    samples = 0
    calls = 0
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            frame = sampler.sample()
        except Exception as exc:
            writer.write(error_frame("sample failed: %s: %s" % (type(exc).__name__, exc)))
            frame = None
            if metrics is not None:
                metrics.latest.failed()
        if frame is not None:
            calls += frame["nvml_calls"]
            if metrics is not None:
                metrics.latest.update(frame)
            if not writer.write(changes.encode(frame) if changes else frame) and changes:
                changes.resync()  # the frame went out as an error: changes would follow nothing
        samples += 1
        if limit and samples >= limit:
            break
        next_at += args.interval
        delay = next_at - time.monotonic()
        if delay < 0:  # fell behind (suspended, overloaded): do not burst to catch up
            next_at = time.monotonic()
            delay = 0
        stop.wait(delay)
    if args.stats:
        stats: Dict[str, Any] = {
            "samples": samples,
            "gpus": len(sampler.readers),
            "nvml_calls_per_sample": round(calls / max(samples, 1), 2),
            "cpu_ms_per_sample": round((time.process_time() - cpu0) * 1000.0 / max(samples, 1), 3),
            "bytes_per_frame": round(writer.bytes / max(writer.frames, 1)),
        }
        sys.stderr.write(json.dumps(stats) + "\n")
    return 0


def streaming_state_dir(args: argparse.Namespace) -> Optional[str]:
    """Where the streaming agent reads the ledger (and a simulated host shares
    its driver state). A real host's agent only looks where a ledger may be; a
    simulated one takes the folder its ``--act`` agents choose, so that what
    they do shows in its samples, as on a real host, and the processes it runs
    are the ones they see."""
    if args.state_dir:
        return str(args.state_dir)
    if not args.sim:
        return existing_state_dir()
    try:
        return choose_state_dir(None)[0]
    except LedgerError:
        return None  # nowhere to write: the simulated host runs without a ledger


def reapply_drains(sampler: Sampler, state_dir: str, host: str) -> List[str]:
    """Compute modes are lost on reboot: put back PROHIBITED on GPUs the
    ledger has drained with the nvml backend. Problems, for error frames."""
    data = LedgerView(state_dir, host).read()
    if data is None:
        return []
    from gputui.agent.act_main import reapply

    return reapply(sampler.caller.nvml, data)
