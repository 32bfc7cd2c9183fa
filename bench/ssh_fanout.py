"""Fan-out to real sshd hosts: time to first frame, dashboard CPU, wire bytes.

Run by hand as root (``python bench/ssh_fanout.py --hosts 32``); not a test.
It brings up the test fleet of ``tests/sshfleet.py`` with N extra simulated
8-GPU hosts behind the jump host, connects the dashboard's data path
(links, parser, store; no screen) to all of them, and reports:

- time from start until every host has sent its first sample (and per-host
  percentiles);
- the dashboard process's CPU % of one core over the steady-state window
  (the sshd and agent processes are other processes and not counted);
- the TCP connections the jump host holds meanwhile (one, shared);
- bytes per host per second on the wire, read from each host's own network
  interface (so SSH framing, encryption and compression are all included),
  with SSH compression on and off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gputui import config as cfg
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore
from gputui.sources.fleet import sources_for
from tests.sshfleet import SshFleet


def tx_bytes(namespace: str | None) -> int:
    if namespace is None:
        return 0
    out = subprocess.run(["ip", "-n", namespace, "-s", "-j", "link", "show"], capture_output=True, text=True, check=True)
    return sum(int(link["stats64"]["tx"]["bytes"]) for link in json.loads(out.stdout) if link["ifname"] != "lo")


def jump_connections(fleet: SshFleet) -> int:
    """Established TCP connections to the jump host's sshd, counted on the jump host."""
    jump = fleet.hosts["gt-jump"]
    if jump.namespace is None:
        return 0
    argv = ["ip", "netns", "exec", jump.namespace, "ss", "-Htn", "state", "established", f"( sport = :{jump.port} )"]
    return len(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


async def measure(fleet: SshFleet, names: list[str], root: Path, seconds: float, compression: bool) -> dict[str, object]:
    text = fleet.config_toml(names, interval=1.0, gpus=8, sim_processes="synthetic")
    text = text.replace("[ssh]\n", f"[ssh]\ncompression = {'true' if compression else 'false'}\n")
    path = root / f"fanout-{compression}.toml"
    path.write_text(text)
    config = cfg.load(path)
    store = FleetStore()
    first: dict[str, float] = {}
    started = time.monotonic()

    def on_change() -> None:
        for name, record in store.hosts.items():
            if name not in first and record.sample is not None:
                first[name] = time.monotonic() - started

    store.listeners.append(on_change)
    runner = FleetRunner(sources_for(config), store)
    runner.start()
    try:
        everyone = asyncio.Event()

        def check_all() -> None:
            if len(first) == len(names):
                everyone.set()

        store.listeners.append(check_all)
        try:
            await asyncio.wait_for(everyone.wait(), timeout=120)
        except TimeoutError:
            pass
        all_first = time.monotonic() - started
        await asyncio.sleep(3)  # let the first-sample bursts pass before the steady window
        tx0 = {n: tx_bytes(fleet.hosts[n].namespace) for n in names}
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        rates = [(tx_bytes(fleet.hosts[n].namespace) - tx0[n]) / wall for n in names]
        bastion = jump_connections(fleet)
    finally:
        await runner.stop()
    return {
        "hosts": len(names),
        "gpus_per_host": 8,
        "compression": compression,
        "hosts_with_first_frame": len(first),
        "first_frame_all_s": round(all_first, 2),
        "first_frame_p50_s": round(percentile(list(first.values()), 0.5), 2) if first else None,
        "first_frame_p99_s": round(percentile(list(first.values()), 0.99), 2) if first else None,
        "dashboard_cpu_pct_of_one_core": round(100 * cpu / wall, 1),
        "wire_bytes_per_host_per_s_mean": round(statistics.mean(rates)),
        "wire_bytes_per_host_per_s_max": round(max(rates)),
        "connections_to_jump_host": bastion,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=32)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gputui-fanout-"))
    fleet = SshFleet(root, extra_hosts=args.hosts)
    try:
        fleet.start()
        names = [f"gt-h{i:03d}" for i in range(args.hosts)]
        # Cold: the agent is installed on every host during the run; warm: it is reused.
        for label, compression in (("cold", True), ("warm", True), ("warm", False)):
            result = asyncio.run(measure(fleet, names, root, args.seconds, compression))
            print(json.dumps({"run": label, **result}), flush=True)
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
