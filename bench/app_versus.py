"""The whole dashboard of two versions in turn on the same demo fleet: the app's CPU per host's sample.

Run by hand (``python bench/app_versus.py --base ccc90f3 --hosts 1024``); not a test. It is how
"1,024 hosts at a third of the CPU of ``ccc90f3``" is judged: ``bench/paired.py`` times parts of
two versions in one process, but only parts both versions have, and the older one read whole
samples where the newer reads changes; this runs each version's whole app as its own ``gputui``
would run it (``demo_app``, and ``tune_heap`` where the version has one), headless, with nothing
measuring inside it but the process's CPU and a count of the samples its store took.

The base comes from ``git archive REV``, unpacked in a temporary folder and run with this
interpreter. Its demo feeds must be able to send copies (``--sampled K``, as the working tree's
``demo_feed`` does: K hosts of each 512 sampled, the others sent one's frames under their own
names), or the feeds' simulation takes a core of this 2-core machine and the app measured is one
starved of CPU: a base without it gets ``bench/feed_copies.patch`` applied (written against
``ccc90f3``'s feed; it says so if it does not apply). ``--sampled-per-feed 0`` runs every host's
simulation, as the bench's figures before the copies did, for the contended figure.

Runs alternate base, working tree, working tree, base, ... so that a slow spell of the machine
falls on both. For each run one JSON line: the app's CPU % of one core, samples taken per host per
second and the microseconds of the app's CPU per host's sample; last, the median ratio (working
tree over base) of the rounds' µs per sample, and which runs fell behind their hosts (a side that
did spread its per-second work over fewer samples: its figure is not the same measure). Each run
ends the process at once after measuring: a version before the shutdown fix (issue 16) may hang
in quitting with thousands of hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCH = ROOT / "bench" / "feed_copies.patch"
SETTLE_S = 5.0  # after every host is live: the first health ticks, the heap frozen once
LIVE_WITHIN_S = 120.0
KEPT_UP = 0.95  # samples read per host per second, of the one each host sends


def unpack(rev: str, into: Path) -> Path:
    """The repository as it was at ``rev``, in ``into``, its demo feed able to send copies."""
    archived = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True)
    if archived.returncode != 0:
        raise SystemExit(f"git archive {rev}: {archived.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archived.stdout)) as tar:
        tar.extractall(into, filter="data")
    feed = into / "gputui" / "sources" / "demo_feed.py"
    if "--sampled" not in feed.read_text():
        # Inside another repository's work tree (TMPDIR in one) git apply would take the patch's
        # paths as that repository's, skip them all and still succeed: git is kept from looking up.
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(into.resolve().parent)}
        done = subprocess.run(["git", "apply", str(PATCH)], cwd=into, env=env, capture_output=True, text=True)
        if done.returncode != 0 or "--sampled" not in feed.read_text():
            raise SystemExit(f"{PATCH.name} did not apply to {rev}'s demo feed: {done.stderr.strip() or 'nothing changed'}")
    return into


def run_one(tree: Path, hosts: int, seconds: float, sampled: int, label: str) -> dict[str, object]:
    """One version's app in a process of its own (its own imports, its own peak memory)."""
    argv = [sys.executable, "-W", "ignore", __file__, "--run", str(tree), "--label", label]
    argv += ["--hosts", str(hosts), "--seconds", str(seconds), "--sampled-per-feed", str(sampled)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=LIVE_WITHIN_S + seconds + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{label} ended {done.returncode}: {done.stderr.strip()[-2000:]}")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def measure_here(tree: Path, hosts: int, seconds: float, sampled: int, label: str) -> None:
    """In the child: the app of ``tree`` on ``hosts`` demo hosts, measured for ``seconds``."""
    sys.path.insert(0, str(tree))
    os.chdir(tree)
    from gputui.fleet.store import FleetStore, HostState
    from gputui.sources.demo import DemoFleet
    from gputui.ui import launch

    DemoFleet.sampled_per_feed = sampled  # type: ignore[misc]  # read by the feed's start (patched in, for an old base)
    taken = [0]
    apply = FleetStore.apply

    def counted(self: FleetStore, *args: object, **kwargs: object) -> None:
        taken[0] += 1
        apply(self, *args, **kwargs)  # type: ignore[arg-type]

    FleetStore.apply = counted  # type: ignore[method-assign]

    tree_of_launch = str(Path(launch.__file__).resolve().parents[2])

    async def main() -> None:
        app = launch.demo_app(hosts, 8, "fleet", 0, 1.0)
        if hasattr(launch, "tune_heap"):
            launch.tune_heap(app)  # as that version's ``gputui`` runs the dashboard
        app.triage_first = False  # the overview in front, the health engine ticking behind it
        async with app.run_test(size=(200, 60)) as pilot:
            store = app.store
            started = time.monotonic()
            while store.counts()[HostState.LIVE] < hosts and time.monotonic() < started + LIVE_WITHIN_S:
                await pilot.pause(0.2)
            await pilot.pause(SETTLE_S)
            cpu0, wall0, taken0 = time.process_time(), time.monotonic(), taken[0]
            await pilot.pause(seconds)
            cpu, wall, samples = time.process_time() - cpu0, time.monotonic() - wall0, taken[0] - taken0
            figures = {
                "version": label,
                "imported_from": tree_of_launch,  # which tree ran
                "hosts": hosts,
                "live_at_end": store.counts()[HostState.LIVE],
                "sampled_per_feed": sampled or None,
                "app_cpu_pct_of_one_core": round(100 * cpu / wall, 1),
                "samples_per_host_s": round(samples / (wall * hosts), 3),
                "us_per_sample": round(1e6 * cpu / max(1, samples), 1),
            }
            print(json.dumps(figures), flush=True)
            os._exit(0)  # not quitting: an old version may hang in it (the module's note)

    asyncio.run(main())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="ccc90f3", help="the version to compare the working tree with")
    p.add_argument("--hosts", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sampled-per-feed", type=int, default=16, metavar="K", help="0: every host simulated")
    p.add_argument("--run", type=Path, metavar="TREE", help="only the app of TREE (a checkout), once: one JSON line")
    p.add_argument("--label", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.run is not None:
        measure_here(args.run, args.hosts, args.seconds, args.sampled_per_feed, args.label or str(args.run))
        return
    ratios, behind = [], []
    with tempfile.TemporaryDirectory(prefix="gputui-base-") as tmp:
        base = unpack(args.base, Path(tmp))
        for round_no in range(args.rounds):
            sides = [(base, args.base), (ROOT, "working tree")]
            figures = {}
            for tree, label in sides if round_no % 2 == 0 else sides[::-1]:
                figures[label] = run_one(tree, args.hosts, args.seconds, args.sampled_per_feed, label)
                print(json.dumps(figures[label]), flush=True)
                if not kept_up(figures[label], args.hosts):
                    behind.append(f"round {round_no + 1}: {label}")
            ratios.append(float(figures["working tree"]["us_per_sample"]) / float(figures[args.base]["us_per_sample"]))  # type: ignore[arg-type]
    summary: dict[str, object] = {"base": args.base, "hosts": args.hosts, "rounds": len(ratios)}
    summary["ratio_median"] = round(statistics.median(ratios), 3)
    summary["ratios"] = [round(r, 3) for r in ratios]
    # A side that fell behind its hosts (or lost some) spread its per-second work, the health pass
    # and the refresh, over fewer samples: its µs per sample is not the same measure.
    summary["fell_behind"] = behind
    print(json.dumps(summary), flush=True)


def kept_up(figures: dict[str, object], hosts: int) -> bool:
    """Every host live at the end, and about one sample read per host per second."""
    return figures["live_at_end"] == hosts and float(figures["samples_per_host_s"]) >= KEPT_UP  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
