"""A real Prometheus for the tests (Debian's ``prometheus`` package), on loopback.

It scrapes the targets it is given every second: gputui agents in
``--metrics-listen`` mode on simulated GPUs, and :class:`DcgmEndpoint`, an
HTTP endpoint that serves text in dcgm-exporter's own format with values the
test plants (what a dcgm-exporter on a real node would send). Its data,
config and log live in a private folder; nothing under /etc is used, and the
package's own service (if any) is left alone.

``make test`` installs the package when run as root; without it the tests
fail saying so (they are not skipped).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/sbin/prometheus"
MISSING = "Debian's prometheus package is not installed: `apt-get install prometheus` (make test does this as root)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrometheusServer:
    def __init__(self, root: Path, targets: Mapping[str, Sequence[str]], scrape_interval: str = "1s") -> None:
        self.root = root
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert Path(PROMETHEUS).exists(), MISSING
        jobs = [
            {"job_name": job, "scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
             "static_configs": [{"targets": list(hosts)}]}
            for job, hosts in self.targets.items()
        ]  # fmt: skip
        config = self.root / "prometheus.yml"
        config.write_text(json.dumps({"global": {"scrape_interval": self.scrape_interval}, "scrape_configs": jobs}))
        log = (self.root / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        wait_until(self._ready, f"prometheus on {self.url} to be ready (log: {self.root / 'prometheus.log'})", timeout=60)

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (self.root / "prometheus.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"query": promql}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=10) as resp:
            answer = json.loads(resp.read())
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def queries_answered(self) -> float:
        """Prometheus's own count of instant queries it answered (its /metrics, read now, not scraped)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line
        )

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_for_hosts(self, names: Sequence[str], timeout: float = 60.0) -> None:
        """Until Prometheus holds a scrape of every host's GPUs."""

        def scraped() -> bool:
            found = {s["metric"].get("Hostname") for s in self.query("count by (Hostname) (DCGM_FI_DEV_FB_USED)")}
            return set(names) <= found

        wait_until(scraped, f"prometheus to have scraped {', '.join(names)}", timeout=timeout, every=0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def gpu_labels(host: str, index: int, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The labels dcgm-exporter puts on a GPU's series, in its order; ``extra`` adds, or drops (None)."""
    labels = {
        "gpu": str(index), "UUID": f"GPU-{host}-{index:04d}", "pci_bus_id": f"00000000:{0x17 + index:02X}:00.0",
        "device": f"nvidia{index}", "modelName": "NVIDIA H100 80GB HBM3", "Hostname": host,
        "DCGM_FI_DRIVER_VERSION": "550.54.15",
    }  # fmt: skip
    for name, value in (extra or {}).items():
        if value is None:
            labels.pop(name, None)
        else:
            labels[name] = value
    return labels


def dcgm_text(host: str, gpus: Sequence[Mapping[str, float]], extra: Mapping[int, Mapping[str, str | None]] | None = None) -> str:
    """One scrape of a dcgm-exporter with the default counters: ``gpus[i]`` maps a family to its value."""
    families: dict[str, list[str]] = {}
    for index, values in enumerate(gpus):
        labels = gpu_labels(host, index, (extra or {}).get(index))
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for family, value in values.items():
            shown = "NaN" if math.isnan(value) else f"{value:g}"
            families.setdefault(family, []).append(f"{family}{{{text}}} {shown}")
    out = []
    for family, lines in families.items():
        kind = "counter" if family.endswith(("_COUNTER", "_TOTAL")) else "gauge"
        out += [f"# HELP {family} {family}.", f"# TYPE {family} {kind}", *lines]
    return "\n".join(out) + "\n"


class DcgmEndpoint:
    """An HTTP endpoint serving ``body`` at /metrics, as a dcgm-exporter on a node would."""

    def __init__(self, body: str) -> None:
        self.body = body
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = endpoint.body.encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_agent(host: str, scenario: str, port: int, gpus: int = 2) -> subprocess.Popen[bytes]:
    """``gputui agent --metrics-listen`` on simulated GPUs, answering before this returns."""
    agent = subprocess.Popen(
        [sys.executable, "-m", "gputui.agent", "--sim", scenario, "--gpus", str(gpus), "--interval", "0.5",
         "--sim-processes", "synthetic", "--host-name", host, "--metrics-listen", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip

    def answers() -> bool:
        assert agent.poll() is None, agent.stderr.read().decode() if agent.stderr else "agent exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                return b"DCGM_FI_DEV_FB_USED" in resp.read()
        except OSError:
            return False

    wait_until(answers, f"the agent for {host} to serve /metrics", timeout=30)
    return agent


@contextmanager
def stopped_at_exit(processes: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    try:
        yield
    finally:
        for p in processes:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
