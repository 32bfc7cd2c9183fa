"""Two versions of the dashboard's per-host work side by side in one process, turn about.

Run by hand (``python bench/paired.py --base a62f4c0 read health --hosts 512``); not a test.
On a shared machine the same run's timings drift by a fifth from one run to the next, more
than most changes to one part move them, so two runs, one per commit, cannot tell a 10 %
change. This one imports ``gputui`` as it was at ``--base`` (from ``git archive``, renamed
``gputui_base``) beside the working tree's, feeds both the same demo lines (bench/demo_lines.py)
and times each in turn, second by second, swapping which goes first: whatever the machine
does to one, it does to the other within a few milliseconds. The figure to read is the median
of the per-second ratios (working tree over base), with its quartiles.

Parts (each in the thread's CPU time, the garbage collector held off while timed):

- ``read``: every host's line of one simulated second decoded and stored
  (``FrameDecoder.frame``, ``FleetStore.apply``), each version into a store of its own;
- ``health``: one ``HealthEngine.evaluate`` of each version over its own store, both fed
  the same second untimed; the alerts (key, severity, title, evidence) are compared each
  pass, and ``alerts_differ`` counts the passes where the two disagreed.

For each part it prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import io
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repo's root, and its gputui before any installed one

from bench.demo_lines import DemoLines, apply_second, connected  # noqa: E402

BASE = "gputui_base"
# An import of the package, at the start of a line (a function's own imports included).
_IMPORT = re.compile(r"^(\s*(?:from|import)\s+)gputui(?=[.\s])", re.MULTILINE)
WARM_UP = 10  # one keyframe cycle of the demo lines: every GPU's history allocated before timing
PARTS = ("read", "health")


def import_base(rev: str, into: Path) -> None:
    """Make ``gputui`` as it was at ``rev`` importable as ``gputui_base``: its files from
    ``git archive``, every import of the package renamed."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "gputui"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / BASE
    (into / "gputui").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(_IMPORT.sub(rf"\1{BASE}", path.read_text()))
    sys.path.insert(0, str(into))


@dataclass
class Side:
    """One version's store, decoders and health engine, fed the same lines as the other's."""

    label: str
    store: Any
    decoders: list[Any]
    engine: Any

    def read(self, names: list[str], lines: list[bytes]) -> None:
        apply_second(self.store, names, self.decoders, lines)

    def alerts(self) -> list[tuple[object, ...]]:
        return [(a.key, int(a.severity), a.title, a.evidence) for a in self.engine.evaluate(self.store)]


def side(package: str, names: list[str], hellos: list[bytes], mono: Callable[[], float], wall: Callable[[], float]) -> Side:
    store_module = importlib.import_module(f"{package}.fleet.store")
    decoder_module = importlib.import_module(f"{package}.frame_decoder")
    engine_module = importlib.import_module(f"{package}.health.engine")
    config_module = importlib.import_module(f"{package}.config")
    store = store_module.FleetStore(clock=mono)
    decoders = connected(names, hellos, store, decoder_module.FrameDecoder)
    return Side(package, store, decoders, engine_module.HealthEngine(config_module.Thresholds(), clock=wall))


def timed(work: Callable[..., Any], *args: object) -> tuple[float, Any]:
    """``work(*args)``'s CPU time in ms, with the collector held off, and what it gave."""
    gc.disable()
    try:
        started = time.thread_time()
        result = work(*args)
        return 1000 * (time.thread_time() - started), result
    finally:
        gc.enable()


def measure(part: str, base_rev: str, hosts: int, rounds: int) -> dict[str, object]:
    fleet = DemoLines(hosts)
    hellos = fleet.hellos()
    clocks = {"mono": 1000.0, "wall": 1_795_000_000.0}
    sides = [side(p, fleet.names, hellos, lambda: clocks["mono"], lambda: clocks["wall"]) for p in (BASE, "gputui")]
    times: dict[str, list[float]] = {s.label: [] for s in sides}
    ratios: list[float] = []
    differ = 0
    for n in range(WARM_UP + rounds):
        clocks["mono"] += 1.0
        clocks["wall"] += 1.0
        lines = fleet.second()
        order = sides if n % 2 else sides[::-1]  # which goes first, swapped each second
        took: dict[str, float] = {}
        if part == "read":
            for s in order:
                took[s.label], _ = timed(s.read, fleet.names, lines)
        else:
            for s in sides:
                s.read(fleet.names, lines)
            found: dict[str, list[tuple[object, ...]]] = {}
            for s in order:
                took[s.label], found[s.label] = timed(s.alerts)
            differ += n >= WARM_UP and found[BASE] != found["gputui"]
        if n >= WARM_UP:
            for label, ms in took.items():
                times[label].append(ms)
            ratios.append(took["gputui"] / took[BASE])
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    out: dict[str, object] = {
        "part": part,
        "hosts": hosts,
        "rounds": rounds,
        "base": base_rev,
        "base_ms_p50": round(statistics.median(times[BASE]), 1),
        "tree_ms_p50": round(statistics.median(times["gputui"]), 1),
        "ratio_p50": round(median, 3),
        "ratio_q1_q3": [round(q1, 3), round(q3, 3)],
    }
    if part == "health":
        out["alerts_differ"] = differ
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="*", help=f"what to time: {', '.join(PARTS)} (default: both)")
    p.add_argument("--base", required=True, help="the commit to compare the working tree with (any git revision)")
    p.add_argument("--hosts", type=int, default=256)
    p.add_argument("--rounds", type=int, default=30, help="simulated seconds timed, after a warm-up of ten")
    args = p.parse_args()
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown:
        p.error(f"no part {', '.join(unknown)}: the parts are {', '.join(PARTS)}")
    with tempfile.TemporaryDirectory(prefix="gputui-base-") as into:
        import_base(args.base, Path(into))
        for part in args.parts or PARTS:
            print(json.dumps(measure(part, args.base, args.hosts, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
