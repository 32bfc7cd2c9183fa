"""What bench/gpu_machine.sh brought back from a GPU machine, read through the dashboard's own code.

Run by hand (``python bench/gpu_machine_report.py FOLDER``); not a test. Every
frame is read as the dashboard reads it (``parse_line`` and a ``FrameDecoder``
per stream), so a frame real NVML shapes differently from the simulator's is
a failure here, named. The figures are set against the targets: NVML calls
per GPU per sample (at most 5), the agent's CPU at 1 s (0.5 % of a core),
the wire (1 KB/s per 8-GPU host) and ``gputui agent --once`` against
``nvitop -1`` (within 1.2x). It prints markdown for the note and the README,
and exits 1 when a check fails, 0 when every one it could make held.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gputui.agent.dcgm_fields import PROMTOOL_NAMING_LINTS
from gputui.frame_decoder import FrameDecoder
from gputui.frames import FrameError, Hello, Sample

CALLS_PER_GPU = 5  # NVML calls per GPU per sample, the sampling budget
CPU_PCT = 0.5  # % of one core at a 1 s interval
WIRE_BPS = 1024  # bytes a second per 8-GPU host
START_RATIO = 1.2  # `gputui agent --once` over `nvitop -1`


class Report:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.failed: list[str] = []
        self.simulated = (folder / "SIMULATED").exists()

    def text(self, name: str) -> str | None:
        path = self.folder / name
        return path.read_text(errors="replace") if path.exists() else None

    def json_line(self, name: str, start: str) -> dict[str, Any] | None:
        """The first line of file ``name`` that starts with ``start``, as JSON."""
        lines = (self.text(name) or "").splitlines()
        found: dict[str, Any] | None = next((json.loads(line) for line in lines if line.startswith(start)), None)
        return found

    def check(self, ok: bool, what: str) -> str:
        if not ok:
            self.failed.append(what)
        return "holds" if ok else "**fails**"

    def frames(self, name: str) -> tuple[list[Hello], list[Sample]]:
        """Every frame of a stream, whole, through one decoder; a frame it refuses is a failure."""
        hellos: list[Hello] = []
        samples: list[Sample] = []
        raw = self.text(name)
        if raw is None:
            self.failed.append(f"{name}: missing")
            return hellos, samples
        decoder = FrameDecoder()
        for number, line in enumerate(raw.splitlines(), 1):
            try:
                frame = decoder.frame(line)
            except FrameError as exc:
                self.failed.append(f"{name} line {number}: {exc}")
                continue
            if isinstance(frame, Hello):
                hellos.append(frame)
            elif isinstance(frame, Sample):
                samples.append(frame)
            else:
                self.failed.append(f"{name} line {number}: a {frame.type} frame: {getattr(frame, 'message', '')}")
        return hellos, samples


def gpus_seen(report: Report) -> None:
    hellos, samples = report.frames("once.ndjson")
    if not hellos or not samples:
        report.failed.append("once.ndjson: no hello and sample")
        return
    hello, sample = hellos[0], samples[0]
    if not sample.gpus:
        report.failed.append("once.ndjson: a sample with no GPUs")
        return
    print(f"- {len(hello.gpus)} GPUs, driver {hello.driver_version}, NVML {hello.nvml_version}, source {hello.source}")
    for static in hello.gpus:
        limits = f"slowdown {static.temp_slowdown_c} C, shutdown {static.temp_shutdown_c} C"
        power = f"power {static.power_min_w}-{static.power_max_w} W"
        mig = f", MIG: {len(static.mig_devices or [])} instances" if static.mig_enabled else ""
        print(f"  - GPU {static.index}: {static.name}, {static.mem_total_mib} MiB, {limits}, {power}{mig}")
    fields = [name for name in type(sample.gpus[0]).model_fields if name not in ("index", "lost", "processes")]
    never = [name for name in fields if all(getattr(gpu, name) is None for gpu in sample.gpus)]
    print(f"- fields no GPU reported (None in the first sample): {', '.join(never) or 'none'}")
    errors = {f"{gpu.index}:{field}": text for gpu in sample.gpus for field, text in (gpu.field_errors or {}).items()}
    print(f"- NVML read errors: {json.dumps(errors) if errors else 'none'}")
    print(f"- processes on the GPUs: {sum(len(gpu.processes) for gpu in sample.gpus)}")
    bundle_hellos, _ = report.frames("bundle.ndjson")
    if bundle_hellos:
        same = [g.uuid for g in hello.gpus] == [g.uuid for g in bundle_hellos[0].gpus]
        print(f"- the bundle (`python3 -I -S agent.zip --once`) reads the same GPUs: {report.check(same, 'bundle: other GPUs')}")


def sampling(report: Report) -> None:
    _, samples = report.frames("stream.ndjson")
    steady = samples[1:]  # the first sample reads what later ones take from the hello
    if not steady:
        report.failed.append("stream.ndjson: no samples after the first")
        return
    per_gpu = [s.nvml_calls / len(s.gpus) for s in steady if s.nvml_calls is not None and s.gpus]
    ms = sorted(s.sample_ms for s in steady if s.sample_ms is not None)
    if not per_gpu or not ms:
        report.failed.append("stream.ndjson: samples without their NVML calls or time")
        return
    worst = max(per_gpu)
    verdict = report.check(worst <= CALLS_PER_GPU, "NVML calls per GPU")
    figures = f"median {statistics.median(per_gpu):.2f}, max {worst:.2f}"
    print(f"- NVML calls per GPU per sample ({len(steady)} after the first): {figures} (target {CALLS_PER_GPU}): {verdict}")
    print(f"- a sample's time in the agent: median {statistics.median(ms):.2f} ms, max {ms[-1]:.2f} ms")
    stats = report.json_line("stream.err", '{"samples"')
    if stats:
        print(f"- the agent's own count (--stats, the first sample included): {stats['cpu_ms_per_sample']} ms of CPU per sample")
    stream, once = report.json_line("stream.err", '{"cpu_of"'), report.json_line("once.err", '{"cpu_of"')
    if not stream or not once or stream["status"] or once["status"]:
        report.failed.append("agent CPU: the one-shot or the stream did not run to the end (once.err, stream.err)")
        return
    # The stream less the one-shot: what running on costs, all its threads included, without the
    # interpreter's start, the imports, NVML's start and the first sample, which both runs pay.
    cpu = stream["user_s"] + stream["sys_s"] - once["user_s"] - once["sys_s"]
    wall = stream["wall_s"] - once["wall_s"]
    pct = 100 * cpu / wall
    # On simulated GPUs the simulator's own work is in the figure: no verdict from it.
    verdict = "no verdict (the simulator's work is in it)" if report.simulated else report.check(pct <= CPU_PCT, "agent CPU")
    print(f"- the agent's process, {len(samples)} samples less one: {cpu:.3f} s CPU in {wall:.1f} s, {pct:.2f} % of a core")
    print(f"  (target {CPU_PCT} %): {verdict}")


def wire(report: Report) -> None:
    raw = (report.folder / "changes.ndjson").read_bytes() if (report.folder / "changes.ndjson").exists() else b""
    _, samples = report.frames("changes.ndjson")
    if len(samples) < 2:
        report.failed.append("changes.ndjson: fewer than two samples")
        return
    seconds = samples[-1].t - samples[0].t
    lines = raw.splitlines()[2:]  # after the hello and the first keyframe
    deflate = zlib.compressobj(6)
    # Flushed line by line, as SSH compresses each packet it sends (bench/agent_cost.py does the same).
    packed = sum(len(deflate.compress(line + b"\n") + deflate.flush(zlib.Z_SYNC_FLUSH)) for line in lines)
    gpus = len(samples[0].gpus)
    plain = sum(len(line) + 1 for line in lines) / seconds
    print(f"- changes ({len(samples)} samples over {seconds:.0f} s, {gpus} GPUs): {plain:.0f} B/s as JSON,")
    host = packed / seconds
    if gpus >= 8:
        verdict = report.check(host * 8 / gpus <= WIRE_BPS, "wire")
        print(
            f"  {host:.0f} B/s deflated as SSH compresses it; per 8 GPUs {host * 8 / gpus:.0f} B/s (target {WIRE_BPS}): {verdict}"
        )
    else:  # a frame's own overhead would be scaled up with its GPUs: no verdict from a smaller host
        print(f"  {host:.0f} B/s deflated as SSH compresses it, for this {gpus}-GPU host (the target is for 8 GPUs)")


def exporter(report: Report) -> None:
    text = report.text("metrics.txt")
    if not text:
        report.failed.append("metrics.txt: the exporter answered nothing")
        return
    families = sorted({m.group(1) for m in re.finditer(r"^# TYPE (\S+)", text, re.M)})
    gpus = len(set(re.findall(r'^DCGM_FI_DEV_GPU_TEMP\{[^}]*gpu="(\d+)"', text, re.M)))
    print(f"- /metrics: {len(families)} metric families, temperature for {gpus} GPUs")
    promtool = shutil.which("promtool")
    if promtool:
        done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
        findings = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        others = [line for line in findings if not line.endswith(PROMTOOL_NAMING_LINTS)]
        ok = done.returncode in (0, 3) and not others
        verdict = report.check(ok, "promtool")
        print(f"- `promtool check metrics` (exit {done.returncode}, naming lints aside): {verdict} {'; '.join(others[:5])}")


def dashboard(report: Report) -> None:
    log = (report.text("install.log") or "").strip().splitlines() or ["not run"]
    print(f"- offline install: {next((line for line in log if ' installed in ' in line), log[-1])}")
    if not any(" installed in " in line for line in log):
        report.failed.append("offline install: the dashboard was not checked on these GPUs (install.log)")
        return
    snapshot = report.text("snapshot.json")
    if not snapshot:
        report.failed.append("snapshot.json: missing or empty (snapshot.err)")
    else:
        hosts = json.loads(snapshot)["hosts"]
        live = [h for h in hosts if h["state"] == "live"]
        gpus = sum(len(h["gpus"]) for h in live)
        verdict = report.check(bool(live), "snapshot")
        print(f"- `gputui snapshot` on the local host: {len(live)} of {len(hosts)} live, {gpus} GPUs: {verdict}")
        for gpu in live[0]["gpus"] if live else []:
            alloc = gpu.get("allocation", {}).get("state")
            heat = f"{gpu['temp_c']} C of {gpu['temp_slowdown_c']}"
            print(f"  - GPU {gpu['index']}: {gpu['util_pct']} % busy, {heat}, {gpu['power_w']} W, {alloc}")
    check = (report.text("check.txt") or "").strip()
    print(f"- `gputui check`: {check.splitlines()[0] if check else 'said nothing'}")
    recording = report.folder / "gpu-machine.gtrec"
    gputui = shutil.which("gputui") or str(Path(sys.executable).parent / "gputui")
    if not recording.exists():
        report.failed.append("gpu-machine.gtrec: no recording (record.log)")
    elif Path(gputui).exists():
        info = subprocess.run([gputui, "replay", "--info", str(recording)], capture_output=True, text=True, check=False)
        said = info.stdout.strip().splitlines()[-1] if info.stdout.strip() else info.stderr.strip()
        verdict = report.check(info.returncode == 0, "recording")
        print(f"- the recording, replayed here (`gputui replay --info`): {verdict} {said}")


def start(report: Report) -> None:
    table = report.text("agent_start.md")
    if not table:
        report.failed.append("agent_start.md: missing")
        return
    print()
    print(table.strip())
    rows = {m.group(1).strip(): m for m in re.finditer(r"^\| ([^|]+) \| (\d+|-)(?: ms)? \|.*\| (\d+) \|$", table, re.M)}
    failed = {name: int(m.group(3)) for name, m in rows.items() if int(m.group(3))}
    medians = {name: float(m.group(2)) for name, m in rows.items() if m.group(2) != "-"}
    # The console script where an install gave one, else the module as the checkout runs it.
    name = "gputui agent --once" if "gputui agent --once" in medians else "python -m gputui.agent --once"
    ours, theirs = medians.get(name), medians.get("nvitop -1")
    print()
    if report.simulated:  # nvitop finds no GPU here: the table checks the script, no ratio
        failed.pop("nvitop -1", None)
    if failed:
        report.failed.append(f"agent_start.md: runs failed: {json.dumps(failed)} (no ratio from a run that failed)")
    elif ours and theirs:
        ratio = ours / theirs
        verdict = report.check(ratio <= START_RATIO, "start time")
        print(f"- `{name}` / `nvitop -1`: {ours:.0f}/{theirs:.0f} ms = {ratio:.2f} (at most {START_RATIO}): {verdict}")
    elif report.simulated:
        print("- no ratio: nvitop finds no GPU to start on here")
    else:
        report.failed.append("agent_start.md: no one-shot agent and `nvitop -1` to compare")


def failed_steps(steps: str, simulated: bool) -> list[str]:
    """The steps whose exit status says they failed (``check``: 0 to 2 are the fleet's verdict; on
    simulated GPUs, nvidia-smi and nvitop have no GPU to find)."""
    out = []
    for line in steps.splitlines():
        name, _, rest = line.partition(" ")
        status = rest.split()[0].removeprefix("rc=") if rest.split() else "?"
        if status == "0" or (name == "check" and status in ("1", "2")) or (simulated and name in ("machine", "nvitop")):
            continue
        out.append(f"step {name}: {'skipped, the time was spent' if status == '-' else 'exit status ' + status}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="the folder bench/gpu_machine.sh wrote ($OUT)")
    folder = p.parse_args().folder
    if not (folder / "steps.log").exists():
        raise SystemExit(f"{folder}: no steps.log, not a folder bench/gpu_machine.sh wrote")
    report = Report(folder)
    if (folder / "SIMULATED").exists():
        print("**Simulated GPUs** (GPU_CHECK_SIM): this checks the script, not NVML; the CPU includes the simulator's.\n")
    machine = report.text("machine.txt") or ""
    print("## The machine\n")
    print("```\n" + "\n".join(line for line in machine.splitlines()[:14] if line.strip()) + "\n```\n")
    parts = (
        ("The GPUs as the agent reads them", gpus_seen),
        ("Sampling", sampling),
        ("On the wire", wire),
        ("The exporter", exporter),
        ("The dashboard there", dashboard),
        ("Start time", start),
    )
    for title, part in parts:
        print(f"## {title}\n")
        try:
            part(report)
        except Exception as exc:  # a file cut short or of another shape: said, and the other parts still read
            report.failed.append(f"{title}: {type(exc).__name__}: {exc}")
        print()
    steps = (report.text("steps.log") or "").strip()
    print("## Steps\n\n```\n" + steps + "\n```\n")
    report.failed += failed_steps(steps, simulated=(folder / "SIMULATED").exists())
    if report.failed:
        print("## Failed\n")
        for what in report.failed:
            print(f"- {what}")
        raise SystemExit(1)
    print("Every check it could make held.")


if __name__ == "__main__":
    main()
