"""Issue 14: a Prometheus that misbehaves. Down, 5xx, a query that hangs, a body that is not
its JSON, series without the host label, NaN values, an answer far too big, a host no longer
scraped: each host it feeds is marked with a clear reason and retried with backoff, the app
never crashes, and old values are never shown as live.

The Prometheus here is :class:`FakePrometheus`, an HTTP server in a thread on 127.0.0.1 that
answers the instant queries gputui/sources/prometheus.py sends (``Queries``) in Prometheus's
JSON, for a small fleet with dcgm-exporter's labels, and that misbehaves as a test tells it.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from gputui import config as cfg
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore, HostState
from gputui.sources import dcgm
from gputui.sources.fleet import from_config
from gputui.ui.launch import configured_app
from tests.waiting import wait_for, wait_true

HOSTS = ("gpu-node-a", "gpu-node-b")
GPUS = 2
SCRAPE_S = 0.5  # how often the fake Prometheus "scrapes" each host
ERROR_503 = "TSDB not ready: the head block is being replayed"
HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>\n"
CLI_TIMEOUT_S = 60


def planted_temp(host: str, gpu: int) -> int:
    return 40 + 10 * HOSTS.index(host) + gpu


def planted_util(host: str, gpu: int) -> int:
    return 11 + 20 * HOSTS.index(host) + gpu


# -- the fake Prometheus ------------------------------------------------------------------
@dataclass
class FakeHost:
    name: str
    scraping: bool = True
    last_scrape: float = 0.0  # the scrape time Prometheus holds for it (epoch s)
    present: bool = True  # its series still in Prometheus

    def scraped_at(self) -> float:
        if self.scraping:
            self.last_scrape = math.floor(time.time() / SCRAPE_S) * SCRAPE_S
        return self.last_scrape


@dataclass
class Behaviour:
    """What the server does now; a test changes it while the fleet is being read."""

    mode: str = "ok"  # ok, 503, hang, trickle, html200, html502, deep, bad_labels, huge
    host_label: str | None = "Hostname"  # None: series carry ``instance`` only (no dcgm-exporter host label)
    temps: dict[tuple[str, int], str] = field(default_factory=dict)  # a raw value instead of the planted one
    xid: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)  # gauge value, changes() in the window
    huge_bytes: int = 10 * 1000 * 1000  # the inventory answer's size in "huge" mode


class FakePrometheus:
    """Prometheus's HTTP API (POST /api/v1/query, instant vectors) over dcgm-exporter's series."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.hosts = {name: FakeHost(name) for name in HOSTS}
        self.lock = threading.Lock()
        self.unhang = threading.Event()
        self.queries: list[str] = []
        self.unknown: list[str] = []  # queries this fake cannot answer: the test would be wrong
        self.huge_sent: list[int] = []  # bytes written of each huge answer before the client hung up
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                try:
                    server.answer(self, self.path, form.get("query", [""])[0])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up (a timeout, a refused answer)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.http.daemon_threads = True
        self.http.request_queue_size = 128  # a refresh sends its ~30 queries at once (http.server's default: 5)
        self.http.server_bind()  # the port is ours, but nothing listens yet: a connection is refused
        self.port = self.http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.http.server_activate()
        self.thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.unhang.set()
        if self.thread is not None:
            self.http.shutdown()
            self.thread.join(10)
        self.http.server_close()

    def set(self, **changes: Any) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self.behaviour, name, value)
            if self.behaviour.mode not in ("hang", "trickle"):
                self.unhang.set()
            else:
                self.unhang.clear()

    def reads(self) -> int:
        """Reads of the whole fleet so far: the inventory query is sent once per refresh."""
        with self.lock:
            return sum(1 for q in self.queries if q.startswith(dcgm.FB_USED))

    # -- answering -----------------------------------------------------------------
    def answer(self, req: BaseHTTPRequestHandler, path: str, query: str) -> None:
        with self.lock:
            b = self.behaviour
            self.queries.append(query)
            mode = b.mode
        if path != "/api/v1/query":
            return self.send(req, 404, {"status": "error", "errorType": "not_found", "error": path})
        if mode == "503":
            return self.send(req, 503, {"status": "error", "errorType": "unavailable", "error": ERROR_503})
        if mode == "hang":
            self.unhang.wait(30)
            return None
        if mode == "trickle":  # headers at once, then a byte now and then: each read is quick, the answer never ends
            req.send_response(200)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", "1000000")
            req.end_headers()
            while not self.unhang.wait(0.3):
                req.wfile.write(b" ")
                req.wfile.flush()
            return None
        if mode == "deep":  # JSON nested past any parser's depth
            return self.send_raw(req, 200, b"[" * 100_000 + b"]" * 100_000, "application/json")
        if mode in ("html200", "html502"):
            return self.send_raw(req, 200 if mode == "html200" else 502, HTML, "text/html")
        result = self.evaluate(query)
        if result is None:
            self.unknown.append(query)
            return self.send(req, 400, {"status": "error", "errorType": "bad_data", "error": f"parse error: {query}"})
        if mode == "huge" and not query.startswith(("max by", "count by")):
            return self.send_huge(req, result, b.huge_bytes)
        if mode == "bad_labels":  # JSON, "success", but a label that is not a string
            for series in result:
                series["metric"]["gpu"] = None
        return self.send(req, 200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    def send(self, req: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        self.send_raw(req, status, json.dumps(body).encode(), "application/json")

    def send_raw(self, req: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
        req.send_response(status)
        req.send_header("Content-Type", kind)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def send_huge(self, req: BaseHTTPRequestHandler, result: list[dict[str, Any]], size: int) -> None:
        """A real vector of ``size`` bytes: the fleet's series, then copies of one series, made as it is sent."""
        head = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})[:-3].encode()
        filler = ("," + json.dumps(result[0])).encode() * 64
        tail = b"]}}"
        copies = (size - len(head) - len(tail)) // len(filler)
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(head) + copies * len(filler) + len(tail)))
        req.end_headers()
        sent = 0
        try:
            req.wfile.write(head)
            sent += len(head)
            for _ in range(copies):
                req.wfile.write(filler)
                sent += len(filler)
            req.wfile.write(tail)
            sent += len(tail)
        finally:
            self.huge_sent.append(sent)

    def series(self, family: str, matchers: str) -> list[tuple[dict[str, str], str, FakeHost]]:
        """Every series of ``family`` that ``matchers`` (``a="b", ...``) select, with its value."""
        wanted = dict(re.findall(r'(\w+)="([^"]*)"', matchers or ""))
        out = []
        b = self.behaviour
        for n, host in enumerate(self.hosts.values()):
            if not host.present:
                continue
            for gpu in range(GPUS):
                value = self.value(family, host.name, gpu)
                if value is None:
                    continue
                labels = {
                    "__name__": family, "gpu": str(gpu), "UUID": f"GPU-{n:04x}{gpu:04x}-5e1f-4c2a-9d3b-0123456789ab",
                    "device": f"nvidia{gpu}", "modelName": "NVIDIA H100 80GB HBM3",
                    "pci_bus_id": f"00000000:{0x18 + gpu:02X}:00.0", "DCGM_FI_DRIVER_VERSION": "550.54.15",
                    "instance": f"{host.name}:9400", "job": "dcgm-exporter",
                }  # fmt: skip
                if b.host_label is not None:
                    labels[b.host_label] = host.name
                if all(labels.get(k) == v for k, v in wanted.items()):
                    out.append((labels, value, host))
        return out

    def value(self, family: str, host: str, gpu: int) -> str | None:
        b = self.behaviour
        fixed = {
            "DCGM_FI_DEV_GPU_UTIL": str(planted_util(host, gpu)), "DCGM_FI_DEV_MEM_COPY_UTIL": "7",
            "DCGM_FI_DEV_GPU_TEMP": b.temps.get((host, gpu), str(planted_temp(host, gpu))),
            "DCGM_FI_DEV_MEMORY_TEMP": "52", "DCGM_FI_DEV_POWER_USAGE": "312.25", "DCGM_FI_DEV_SM_CLOCK": "1980",
            "DCGM_FI_DEV_MEM_CLOCK": "2619", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "0",
            "DCGM_FI_DEV_FB_USED": str(1000 * (gpu + 1)), "DCGM_FI_DEV_FB_FREE": str(81000 - 1000 * (gpu + 1)),
            "DCGM_FI_DEV_FB_RESERVED": "559", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": "0",
            dcgm.XID: b.xid.get((host, gpu), ("0", 0))[0],
        }  # fmt: skip
        return fixed.get(family)  # ECC and retired pages: not exported, as in dcgm-exporter's default counters

    def evaluate(self, query: str) -> list[dict[str, Any]] | None:
        """The instant vector of one of the queries gputui sends; None for any other query."""
        now = time.time()
        m = re.fullmatch(r"count by \(([\w, ]*)\) \((\w+)(?:\{(.*)\})?\)", query)
        if m:
            return self.grouped(m[1], [(labels, 1.0) for labels, _, _ in self.series(m[2], m[3])], now, count=True)
        m = re.fullmatch(r"max by \(([\w, ]*)\) \(timestamp\((\w+)(?:\{(.*)\})?\)\)", query)
        if m:
            return self.grouped(m[1], [(labels, host.scraped_at()) for labels, _, host in self.series(m[2], m[3])], now)
        m = re.fullmatch(r"max by \(([\w, ]*)\) \(changes\((\w+)(?:\{(.*)\})?\[\d+[smh]\]\)\)", query)
        if m:
            rows = [
                (labels, float(self.behaviour.xid.get((host.name, int(labels["gpu"])), ("0", 0))[1]))
                for labels, _, host in self.series(m[2], m[3])
            ]
            return self.grouped(m[1], rows, now)
        m = re.fullmatch(r'max by \(([\w, ]*)\) \(\{__name__=~"([\w|]+)"(?:, (.*))?\}\)', query)
        if m:  # every family's values in one query, told apart by __name__
            rows = [(labels, float(v)) for family in m[2].split("|") for labels, v, _ in self.series(family, m[3])]
            return self.grouped(m[1], rows, now)
        m = re.fullmatch(r"max by \(([\w, ]*)\) \((\w+)(?:\{(.*)\})?\)", query)
        if m:
            return self.grouped(m[1], [(labels, float(v)) for labels, v, _ in self.series(m[2], m[3])], now)
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})?", query)
        if m:
            return [{"metric": labels, "value": [now, v]} for labels, v, _ in self.series(m[1], m[2])]
        return None

    @staticmethod
    def grouped(by: str, rows: list[tuple[dict[str, str], float]], now: float, count: bool = False) -> list[dict[str, Any]]:
        """``max by (...)`` / ``count by (...)``: the labels named (those a series has), one value per group."""
        names = [n.strip() for n in by.split(",") if n.strip()]
        groups: dict[tuple[tuple[str, str], ...], float] = {}
        for labels, value in rows:
            key = tuple((n, labels[n]) for n in names if n in labels)
            old = groups.get(key)
            groups[key] = (old or 0.0) + 1 if count else value if old is None or not old >= value else old
        return [{"metric": dict(key), "value": [now, prom_text(v)]} for key, v in groups.items()]


def prom_text(value: float) -> str:
    """A sample value as Prometheus writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value == int(value) else repr(value)


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    """A fake Prometheus, bound but not yet listening: tests call ``start()``."""
    server = FakePrometheus()
    try:
        yield server
    finally:
        server.stop()
    assert not server.unknown, f"queries the fake Prometheus does not know: {server.unknown[:3]}"


@pytest.fixture
def up(prom: FakePrometheus) -> FakePrometheus:
    prom.start()
    return prom


# -- helpers ---------------------------------------------------------------------------------
def settings(url: str, **more: Any) -> cfg.Prometheus:
    base: dict[str, Any] = {"url": url, "refresh_s": 0.2, "timeout_s": 1.0, "scrape_interval_s": SCRAPE_S}
    return cfg.Prometheus(**(base | more))


def gputui(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it, with no config of the machine's (an empty XDG_CONFIG_HOME)."""
    env = {k: v for k, v in os.environ.items() if k != "GPUTUI_CONFIG"} | {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = subprocess.run(
        [sys.executable, "-m", "gputui", *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[prometheus]\nurl = "{url}"\n{extra}\n')
    return path


@asynccontextmanager
async def following(config: cfg.Config) -> AsyncIterator[FleetStore]:
    """The fleet of ``config`` followed as the dashboard follows it (retries, hosts found later), in-process."""
    fleet = from_config(config)
    assert not fleet.problems, fleet.problems
    runner = FleetRunner(fleet.sources, fleet.store)
    runner.start()
    fleet.follow_new(runner.add)
    try:
        yield fleet.store
    finally:
        await runner.stop()
        await fleet.close()


def states(store: FleetStore) -> dict[str, HostState]:
    now = store.clock()
    return {name: r.state(now) for name, r in store.hosts.items()}


def all_in(store: FleetStore, state: HostState) -> Callable[[], bool]:
    return lambda: set(store.hosts) == set(HOSTS) and all(s is state for s in states(store).values())


def live_with_planted_values(store: FleetStore) -> bool:
    if not all_in(store, HostState.LIVE)():
        return False
    for name, record in store.hosts.items():
        got = {g.index: (g.temp_c, g.util_pct) for g in record.gpus()}
        if got != {gpu: (planted_temp(name, gpu), planted_util(name, gpu)) for gpu in range(GPUS)}:
            return False
    return True


def errors(store: FleetStore) -> dict[str, str | None]:
    return {name: r.error for name, r in store.hosts.items()}


async def down_with(store: FleetStore, *words: str, timeout: float = 15.0) -> None:
    """Every host DOWN with a reason holding ``words``."""

    def check() -> bool:
        return all_in(store, HostState.DOWN)() and all(all(w in (e or "") for w in words) for e in errors(store).values())

    try:
        await wait_true(check, "", timeout)
    except AssertionError:
        raise AssertionError(f"not every host down with {words}: {states(store)}, {errors(store)}") from None


async def stays_down(store: FleetStore, prom: FakePrometheus, reads: int = 2) -> None:
    """While Prometheus keeps failing, the feed tries again (``reads`` more reads of the fleet) and
    every host stays DOWN all along: never LIVE again with what it had."""
    seen = prom.reads()

    def check() -> bool:
        assert all_in(store, HostState.DOWN)(), f"a host not down while Prometheus fails: {states(store)}"
        return prom.reads() >= seen + reads

    await wait_true(check, f"{reads} more reads of the fleet (backoff)", timeout=20)


# -- 1. Prometheus down at the start -----------------------------------------------------------
def test_snapshot_and_check_say_prometheus_cannot_be_reached(prom: FakePrometheus, tmp_path: Path) -> None:
    snap = gputui(tmp_path, "snapshot", "--prometheus", prom.url, "--format", "json")
    assert snap.returncode == 2, snap
    assert prom.url in snap.stderr and "cannot connect" in snap.stderr, snap.stderr
    assert snap.stdout == ""
    check = gputui(tmp_path, "check", "--prometheus", prom.url)
    assert check.returncode == 3, check  # UNKNOWN
    assert prom.url in check.stderr and "cannot connect" in check.stderr, check.stderr


@pytest.mark.parametrize("scrape_s", [SCRAPE_S, 30.0])
async def test_dashboard_starts_without_prometheus_and_finds_the_hosts_once_it_is_up(
    prom: FakePrometheus, scrape_s: float
) -> None:
    if scrape_s != SCRAPE_S:  # scraped every 30 s: what Prometheus holds now is all the test will see
        for host in prom.hosts.values():
            host.scraping, host.last_scrape = False, time.time()
    app = configured_app(None, cfg.Config(prometheus=settings(prom.url, scrape_interval_s=scrape_s)))
    async with app.run_test(size=(150, 40)) as pilot:

        def said() -> list[str]:
            return [str(n.message) for n in app._notifications if "cannot connect" in str(n.message)]

        await wait_for(pilot, lambda: bool(said()), "a notification that Prometheus cannot be reached")
        assert prom.url in said()[0]
        assert app.store.hosts == {}
        prom.start()
        await wait_for(pilot, lambda: live_with_planted_values(app.store), "the hosts found and live", timeout=30)
        assert app.is_running


# -- 2. live, then 5xx, then back ----------------------------------------------------------------
async def test_a_5xx_marks_every_host_down_with_the_reason_and_they_come_back(up: FakePrometheus) -> None:
    async with following(cfg.Config(prometheus=settings(up.url))) as store:
        await wait_true(lambda: live_with_planted_values(store), "every host live with the planted values")
        up.set(mode="503")
        await down_with(store, up.url, "HTTP 503", ERROR_503)
        await stays_down(store, up)
        up.set(mode="ok")
        await wait_true(lambda: live_with_planted_values(store), "every host live again", timeout=30)
        assert all(r.error is None for r in store.hosts.values())


# -- 3. a query that hangs ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["hang", "trickle"])
async def test_a_query_that_hangs_marks_every_host_down(up: FakePrometheus, mode: str) -> None:
    async with following(cfg.Config(prometheus=settings(up.url))) as store:
        await wait_true(lambda: live_with_planted_values(store), "every host live")
        up.set(mode=mode)
        started = time.monotonic()
        await down_with(store, up.url, "no answer within 1s")
        await stays_down(store, up)
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_snapshot_against_a_hanging_prometheus_gives_up(up: FakePrometheus, tmp_path: Path, mode: str) -> None:
    up.set(mode=mode)
    path = write_config(tmp_path, up.url, "timeout_s = 1")
    snap = gputui(tmp_path, "snapshot", "--config", str(path))
    assert snap.returncode == 2, snap
    assert "no answer within 1s" in snap.stderr


# -- 4. not Prometheus's JSON --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("html200", ("not Prometheus's JSON", "502 Bad Gateway")),
        ("html502", ("HTTP 502", "not Prometheus's JSON")),
        ("deep", ("not Prometheus's JSON",)),
        ("bad_labels", ("not Prometheus's JSON", "labels are not strings")),
    ],
)
async def test_a_body_that_is_not_prometheus_json_marks_every_host_down(
    up: FakePrometheus, mode: str, words: tuple[str, ...]
) -> None:
    async with following(cfg.Config(prometheus=settings(up.url))) as store:
        await wait_true(lambda: live_with_planted_values(store), "every host live")
        up.set(mode=mode)
        await down_with(store, up.url, *words)
        await stays_down(store, up)
        up.set(mode="ok")  # the feed kept trying
        await wait_true(lambda: live_with_planted_values(store), "every host live again", timeout=30)


@pytest.mark.parametrize(
    ("mode", "words"),
    [("html200", "not Prometheus's JSON"), ("html502", "HTTP 502, not Prometheus's JSON"), ("deep", "not Prometheus's JSON")],
)
def test_snapshot_and_check_say_the_answer_is_not_prometheus_json(
    up: FakePrometheus, tmp_path: Path, mode: str, words: str
) -> None:
    up.set(mode=mode)
    snap = gputui(tmp_path, "snapshot", "--prometheus", up.url)
    assert snap.returncode == 2, snap
    assert f"prometheus {up.url}: {words}" in snap.stderr
    check = gputui(tmp_path, "check", "--prometheus", up.url, "--format", "nagios")
    assert check.returncode == 3, check
    assert check.stdout.startswith("GPUTUI UNKNOWN - ") and words in check.stdout, check.stdout


# -- 5. no host label -----------------------------------------------------------------------------
def test_series_without_the_host_label_say_to_set_host_label(up: FakePrometheus, tmp_path: Path) -> None:
    up.set(host_label=None)
    snap = gputui(tmp_path, "snapshot", "--prometheus", up.url)
    assert snap.returncode == 2, snap
    assert "no series has the label Hostname or hostname" in snap.stderr
    assert "set [prometheus] host_label" in snap.stderr

    path = write_config(tmp_path, up.url, 'host_label = "instance"')
    snap = gputui(tmp_path, "snapshot", "--config", str(path), "--format", "json")
    assert snap.returncode == 0, snap
    hosts = {h["name"]: h for h in json.loads(snap.stdout)["hosts"]}
    assert set(hosts) == {f"{h}:9400" for h in HOSTS}
    for name in HOSTS:
        host = hosts[f"{name}:9400"]
        assert host["state"] == "live"
        assert [g["temp_c"] for g in host["gpus"]] == [planted_temp(name, gpu) for gpu in range(GPUS)]


# -- 6. NaN and infinite values -----------------------------------------------------------------
def test_nan_and_inf_are_null_with_the_reason_never_zero(up: FakePrometheus, tmp_path: Path) -> None:
    up.set(temps={(HOSTS[0], 1): "NaN", (HOSTS[1], 0): "+Inf"})
    snap = gputui(tmp_path, "snapshot", "--prometheus", up.url, "--format", "json")
    assert snap.returncode == 0, snap
    hosts = {h["name"]: h for h in json.loads(snap.stdout)["hosts"]}
    assert all(h["state"] == "live" for h in hosts.values())
    gpus = {(name, g["index"]): g for name, h in hosts.items() for g in h["gpus"]}
    for (name, index), raw in [((HOSTS[0], 1), "NaN"), ((HOSTS[1], 0), "+Inf")]:
        gpu = gpus[name, index]
        assert gpu["temp_c"] is None
        assert gpu["field_errors"] == {"temp_c": f"dcgm-exporter gave {raw} for DCGM_FI_DEV_GPU_TEMP"}
        assert gpu["util_pct"] == planted_util(name, index)  # the rest of the GPU is still read
    assert gpus[HOSTS[0], 0]["temp_c"] == planted_temp(HOSTS[0], 0)
    assert gpus[HOSTS[0], 0]["field_errors"] is None


# -- 7. an answer far too big -------------------------------------------------------------------
async def test_an_answer_over_max_answer_mib_is_refused(up: FakePrometheus) -> None:
    async with following(cfg.Config(prometheus=settings(up.url, max_answer_mib=8))) as store:
        await wait_true(lambda: live_with_planted_values(store), "every host live")
        up.set(mode="huge")  # 10 MB
        await down_with(store, up.url, "over 8 MiB", "refused")
        await stays_down(store, up)
        # Much bigger: the cap stops reading, so Prometheus gets to send hardly more than the cap.
        up.huge_sent.clear()
        up.set(huge_bytes=256 * 1024 * 1024)
        await wait_true(lambda: len(up.huge_sent) >= 2, "two more answers refused")
        assert max(up.huge_sent) < 40 * 1024 * 1024, up.huge_sent
        assert all_in(store, HostState.DOWN)()
        up.set(mode="ok")
        await wait_true(lambda: live_with_planted_values(store), "every host live again", timeout=30)


def test_snapshot_refuses_an_answer_over_max_answer_mib(up: FakePrometheus, tmp_path: Path) -> None:
    up.set(mode="huge")
    path = write_config(tmp_path, up.url, "max_answer_mib = 8")
    snap = gputui(tmp_path, "snapshot", "--config", str(path), "--format", "json")
    assert snap.returncode == 1, snap  # hosts known, none read
    hosts = json.loads(snap.stdout)["hosts"]
    assert [h["name"] for h in hosts] == list(HOSTS)
    for host in hosts:
        assert host["state"] == "down" and host["gpus"] == []
        assert "an answer over 8 MiB was refused" in host["error"]


# -- 8. a host no longer scraped ---------------------------------------------------------------
@pytest.mark.parametrize("how", ["timestamp frozen", "series gone"])
async def test_a_host_no_longer_scraped_turns_stale(up: FakePrometheus, how: str) -> None:
    # The config's scrape interval is wrong (5 s); the hello says the one measured (0.5 s).
    config = cfg.Config(prometheus=settings(up.url, scrape_interval_s=5.0))
    stale_after = config.thresholds.stale_after_intervals
    async with following(config) as store:
        await wait_true(lambda: live_with_planted_values(store), "every host live")
        first = store.hosts[HOSTS[0]]
        await wait_true(lambda: first.hello is not None and first.hello.interval_s == SCRAPE_S, "the measured interval")
        gone = up.hosts[HOSTS[0]]
        if how == "timestamp frozen":
            gone.scraping = False
        else:
            gone.present = False
        stopped = time.monotonic()
        seen: set[HostState] = set()

        def stale() -> bool:
            seen.add(states(store)[HOSTS[0]])
            return states(store)[HOSTS[0]] is HostState.STALE

        await wait_true(stale, f"{HOSTS[0]} stale", timeout=10)
        # Its last frame came at most one scrape before it stopped; stale after stale_after intervals.
        assert time.monotonic() - stopped < stale_after * SCRAPE_S + 2.0  # (unmeasured: 3 x 5 s)
        assert states(store)[HOSTS[1]] is HostState.LIVE  # the other host is still scraped
        other = store.hosts[HOSTS[1]]
        await wait_true(lambda: other.sample is not None and other.sample.seq >= 8, f"more samples from {HOSTS[1]}")
        assert states(store)[HOSTS[0]] is HostState.STALE  # and stays so


async def test_xid_gauge_through_prometheus_is_logged_once_per_change(up: FakePrometheus) -> None:
    host = HOSTS[0]
    up.set(xid={(host, 1): ("79", 0)})  # an XID 79 from before the window: the gauge keeps it
    async with following(cfg.Config(prometheus=settings(up.url))) as store:
        record = store.hosts[host]

        def samples_past(seq: int) -> Callable[[], bool]:
            return lambda: record.sample is not None and record.sample.seq >= seq

        await wait_true(samples_past(3), "three samples")
        assert list(record.events) == []
        up.set(xid={(host, 1): ("79", 1)})  # it changed to 79 within the window
        await wait_true(lambda: len(record.events) == 1, "the XID logged")
        assert (record.events[0].xid, record.events[0].gpu) == (79, 1)
        assert record.sample is not None
        await wait_true(samples_past(record.sample.seq + 3), "three more samples")
        assert len(record.events) == 1  # the gauge still says 79: not a new XID
        up.set(xid={(host, 1): ("48", 2)})
        await wait_true(lambda: len(record.events) == 2, "the second XID logged")
        assert [(e.xid, e.gpu) for e in record.events] == [(79, 1), (48, 1)]
        assert not store.hosts[HOSTS[1]].events


# -- XID semantics (dcgm.HostFrames, no server) --------------------------------------------------
def reading_at(t: float, xid: str, changed: bool) -> tuple[dcgm.Reading, list[dcgm.Key]]:
    reading = dcgm.Reading()
    host = "h"
    inventory = [
        {
            "metric": {"Hostname": host, "gpu": str(g), "UUID": f"GPU-{g}", "modelName": "NVIDIA A100-SXM4-80GB"},
            "value": [t, "100"],
        }
        for g in range(GPUS)
    ]
    reading.add_inventory(inventory, None)
    reading.add_scraped([{"metric": {"Hostname": host}, "value": [t, str(t)]}], None)
    reading.add_values([{"metric": {"__name__": dcgm.XID, "Hostname": host, "gpu": "0"}, "value": [t, xid]}], None)
    reading.add_xid_changes([{"metric": {"Hostname": host, "gpu": "0"}, "value": [t, "1" if changed else "0"]}], None)
    return reading, reading.hosts()["h"]


def xids(frames: dcgm.HostFrames, t: float, xid: str, changed: bool) -> list[tuple[int, int]]:
    reading, keys = reading_at(t, xid, changed)
    out = frames.frames(reading, keys)
    assert out and out[-1]["type"] == "sample" and out[-1]["t"] == t
    return [(e["xid"], e["gpu"]) for e in out[-1].get("events", [])]


def test_xid_gauge_is_an_event_only_when_it_changes() -> None:
    frames = dcgm.HostFrames("h", 1.0)
    assert xids(frames, 100.0, "79", changed=False) == []  # an old XID, still in the gauge
    assert xids(frames, 101.0, "79", changed=False) == []
    assert xids(frames, 102.0, "79", changed=True) == [(79, 0)]  # it changed to 79 lately: once
    assert xids(frames, 103.0, "79", changed=True) == []  # still within the window: the same XID
    assert xids(frames, 104.0, "79", changed=True) == []
    assert xids(frames, 105.0, "48", changed=True) == [(48, 0)]  # a new code
    assert xids(frames, 106.0, "48", changed=True) == []
    assert xids(frames, 107.0, "48", changed=False) == []  # quiet for the whole window
    assert xids(frames, 108.0, "48", changed=True) == [(48, 0)]  # then the same code again is a new XID


def test_an_unreadable_token_file_is_said_plainly_before_anything_is_asked(tmp_path: Path) -> None:
    """A setting the operator must fix is an error at start (exit 2, the file named), not a host to retry;
    the token itself is never printed."""
    config = tmp_path / "config.toml"
    config.write_text(f'[prometheus]\nurl = "http://127.0.0.1:9"\nbearer_token_file = "{tmp_path}/missing.token"\n')
    for command in ("snapshot", "check"):
        r = subprocess.run(
            [sys.executable, "-m", "gputui", command, "--config", str(config)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert r.returncode == (2 if command == "snapshot" else 3), r.stderr + r.stdout
        assert f"cannot read bearer_token_file {tmp_path}/missing.token" in r.stderr + r.stdout
    (tmp_path / "secret.token").write_text("s3cr3t-t0ken\n")
    config.write_text(f'[prometheus]\nurl = "http://127.0.0.1:9"\nbearer_token_file = "{tmp_path}/secret.token"\n')
    r = subprocess.run(
        [sys.executable, "-m", "gputui", "snapshot", "--config", str(config)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 2 and "cannot connect" in r.stderr and "s3cr3t" not in r.stderr + r.stdout
