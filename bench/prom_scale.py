"""The dashboard reading 10,000 GPUs through a real Prometheus: CPU, memory, refresh time.

Run by hand (``python bench/prom_scale.py``); not a test. It starts Debian's
``prometheus`` on loopback, scraping ``--exporters`` dcgm-exporter-format
endpoints that together serve ``--hosts`` 8-GPU hosts (dcgm-exporter's
default counters, values that move every scrape), waits until Prometheus
holds them all, then runs the real app headless on ``gputui --prometheus``
and reports, for the app process alone (Prometheus and the endpoints are
other processes, as they would be at a site), what bench/ui_scale.py
reports for the demo fleet, plus how many queries Prometheus answered, how
long one read of the whole fleet took (its four queries and decoding the
answers) and the bytes of its answers per refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from multiprocessing import Process, Queue
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ui_scale import measure_app
from gputui import config as cfg
from gputui.ui.launch import configured_app
from tests.prometheus_server import DcgmEndpoint, PrometheusServer, dcgm_text

FAMILIES = {
    "DCGM_FI_DEV_GPU_UTIL": (0, 100), "DCGM_FI_DEV_MEM_COPY_UTIL": (0, 60), "DCGM_FI_DEV_FB_USED": (1000, 70000),
    "DCGM_FI_DEV_FB_FREE": (10000, 80000), "DCGM_FI_DEV_GPU_TEMP": (35, 80), "DCGM_FI_DEV_MEMORY_TEMP": (35, 85),
    "DCGM_FI_DEV_POWER_USAGE": (60, 700), "DCGM_FI_DEV_SM_CLOCK": (300, 1980), "DCGM_FI_DEV_MEM_CLOCK": (2619, 2619),
    "DCGM_FI_DEV_XID_ERRORS": (0, 0), "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": (0, 0),
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": (0, 0), "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": (0, 0),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": (0, 0),
}  # fmt: skip


def body(first: int, count: int, rng: random.Random) -> str:
    """``count`` hosts' scrape: as many dcgm-exporters, one text (one endpoint stands for many nodes)."""
    parts = []
    for n in range(first, first + count):
        gpus = [{f: float(rng.randint(lo, hi)) for f, (lo, hi) in FAMILIES.items()} for _ in range(8)]
        parts.append(dcgm_text(f"gpu-{n:05d}", gpus))
    # One HELP/TYPE per family in a scrape: keep the first host's, drop the repeats.
    seen: set[str] = set()
    lines = []
    for line in "".join(parts).splitlines():
        if line.startswith("#"):
            key = line.split(" ", 3)[1] + line.split(" ", 3)[2]
            if key in seen:
                continue
            seen.add(key)
        lines.append(line)
    return "\n".join(lines) + "\n"


def serve(hosts: int, exporters: int, addresses: Queue[list[str]]) -> None:
    """The endpoints, in a process of their own: their CPU is not the dashboard's."""
    rng = random.Random(0)
    per = -(-hosts // exporters)
    spans = [(i * per, min(per, hosts - i * per)) for i in range(exporters)]
    endpoints = [DcgmEndpoint(body(first, count, rng)) for first, count in spans]
    addresses.put([e.address for e in endpoints])
    while True:  # new values every few seconds, as GPUs would have
        time.sleep(5.0)
        for e, (first, count) in zip(endpoints, spans, strict=True):
            e.body = body(first, count, rng)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=1250)
    p.add_argument("--exporters", type=int, default=10)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--scrape", default="5s", help="Prometheus's scrape interval (default 5s)")
    p.add_argument("--refresh", type=float, default=5.0, help="[prometheus] refresh_s (default 5)")
    args = p.parse_args()
    addresses: Queue[list[str]] = Queue()
    server = Process(target=serve, args=(args.hosts, args.exporters, addresses), daemon=True)
    server.start()
    targets = addresses.get(timeout=300)
    with tempfile.TemporaryDirectory(prefix="gt-prom-bench-") as root:
        prometheus = PrometheusServer(Path(root), {"dcgm": targets}, scrape_interval=args.scrape)
        prometheus.start()
        try:
            prometheus.wait_for_hosts([f"gpu-{n:05d}" for n in (0, args.hosts - 1)], timeout=300)
            settings = cfg.Prometheus(url=prometheus.url, refresh_s=args.refresh, scrape_interval_s=5.0)
            app = configured_app(None, cfg.Config(prometheus=settings))
            feed = app.runner.sources[0].feed  # type: ignore[attr-defined]  # every host's: one PrometheusFeed
            queries0, t0 = prometheus.queries_answered(), time.monotonic()
            result = asyncio.run(measure_app(app, args.hosts, args.seconds))
            took = time.monotonic() - t0
            result["prometheus_queries_per_s"] = round((prometheus.queries_answered() - queries0) / took, 2)
            reads = sorted(feed.read_s)
            result["fleet_reads"] = len(reads)
            result["fleet_read_p50_ms"] = round(1000 * reads[len(reads) // 2]) if reads else None
            result["fleet_read_max_ms"] = round(1000 * reads[-1]) if reads else None
            result["bytes_per_refresh"] = round(feed.client.bytes_read / max(1, feed.refreshes))
            result["refresh_s"] = args.refresh
            result["scrape"] = args.scrape
            print(json.dumps(result), flush=True)
        finally:
            prometheus.stop()
            server.terminate()


if __name__ == "__main__":
    main()
