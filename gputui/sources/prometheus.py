"""``[prometheus]``: the fleet as a Prometheus holding dcgm-exporter's metrics sees it.

Large sites already run dcgm-exporter on every node and Prometheus to scrape
it; they will not open thousands of SSH connections from a laptop. This
source asks Prometheus instead: hosts are the values of the host label
(``Hostname``, else ``hostname``, or ``host_label``), found once at start
and again on every refresh, so nodes that join appear by themselves.

One shared feed reads the whole fleet per refresh in four instant queries,
whatever its size, never one per host: every family's values in one
(``{__name__=~"..."}``, grouped by name, host, GPU and MIG instance, so each
series carries four labels, not twelve), every label of the framebuffer
series (model, UUID, bus id, driver, pod), each host's latest scrape time,
and the GPUs whose XID gauge moved lately.
gputui/sources/dcgm.py turns the answers into each host's frames; each host
is then a source of its own for the runner, so that a host's trouble, the
store and the screens are as for an SSH host.

When Prometheus fails (down, an HTTP error, a timeout, a body that is not
its JSON, an answer over ``max_answer_mib``), every host it feeds is marked
down with the reason, and the feed tries again with backoff; nothing old is
shown as live. The HTTP client is httpx (README: Dependencies).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from gputui import config as cfg
from gputui.frames import ErrorFrame, FrameError, Hello, Result, Sample
from gputui.sources import dcgm
from gputui.sources.base import FleetPart, LineTap, LinkError, Source

log = logging.getLogger(__name__)
QUEUED = 4  # refreshes a host may fall behind before the oldest is dropped
BACKOFF_MAX_S = 60.0
Frame = Hello | Sample | ErrorFrame | Result


def fleet_sources(settings: cfg.Prometheus, config: cfg.Config) -> FleetPart:
    """The hosts Prometheus knows now (those in ``[[hosts]]`` are read by their own transport),
    each a source on one shared feed. Prometheus unreachable: no hosts yet, and ``problem`` says why;
    the dashboard keeps trying and adds them as they come."""
    skip = {h.name for h in config.hosts}
    try:
        feed = PrometheusFeed(settings, skip)
    except LinkError as exc:  # the settings themselves (an unreadable token file): the operator's to fix, not to retry
        raise ValueError(str(exc)) from None
    problem = None
    try:
        names = feed.discover()
    except LinkError as exc:
        names, problem = [], str(exc)
    return FleetPart([feed.source(name) for name in names], feed.close, problem=problem, follow_new=feed.follow_new)


class PromClient:
    """Prometheus's HTTP API: instant queries, each answer held to a size and a time."""

    def __init__(self, settings: cfg.Prometheus) -> None:
        self.url = settings.url
        self.limit_mib = settings.max_answer_mib
        self.limit = int(settings.max_answer_mib * 1024 * 1024)
        self.timeout = settings.timeout_s
        headers = {"Accept": "application/json"}
        if settings.bearer_token_file:
            headers["Authorization"] = f"Bearer {read_token(settings.bearer_token_file)}"
        self.options: dict[str, Any] = {
            "base_url": self.url, "timeout": settings.timeout_s, "headers": headers,
            "verify": settings.ca_file or True, "follow_redirects": False,
        }  # fmt: skip
        self.http: httpx.AsyncClient | None = None
        self.bytes_read = 0  # answers' bodies, all queries (the benchmark's bytes per refresh)

    def query_now(self, promql: str) -> list[dict[str, Any]]:
        """One query, answered before returning (the hosts, when the fleet is opened)."""
        try:
            with httpx.Client(**self.options) as http, http.stream("POST", "/api/v1/query", data={"query": promql}) as resp:
                body = self._body_sync(resp, time.monotonic() + self.timeout)
        except httpx.TimeoutException:
            raise LinkError(f"prometheus {self.url}: no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise LinkError(f"prometheus {self.url}: cannot connect: {exc}") from None
        return self._result(resp.status_code, body)

    async def query(self, promql: str) -> list[dict[str, Any]]:
        if self.http is None:
            self.http = httpx.AsyncClient(**self.options)
        try:
            # httpx's timeout bounds each read, not the answer: one that trickles in a byte at a time
            # never ended, and its hosts went stale with no reason. timeout_s is the whole query's.
            async with asyncio.timeout(self.timeout), self.http.stream("POST", "/api/v1/query", data={"query": promql}) as resp:
                body = await self._body(resp)
        except (httpx.TimeoutException, TimeoutError):
            raise LinkError(f"prometheus {self.url}: no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise LinkError(f"prometheus {self.url}: cannot connect: {exc}") from None
        # Decoding 10,000 GPUs' answer takes a few hundred ms: in a thread, so the screen keeps its turns.
        return await asyncio.to_thread(self._result, resp.status_code, body)

    def _too_big(self) -> LinkError:
        return LinkError(f"prometheus {self.url}: an answer over {self.limit_mib:g} MiB was refused (max_answer_mib)")

    def _keep(self, body: bytearray, chunk: bytes) -> None:
        """Add one chunk of an answer, refusing it past the cap before more is read."""
        body += chunk
        self.bytes_read += len(chunk)
        if len(body) > self.limit:
            raise self._too_big()

    async def _body(self, resp: httpx.Response) -> bytes:
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            self._keep(body, chunk)
        return bytes(body)

    def _body_sync(self, resp: httpx.Response, deadline: float) -> bytes:
        body = bytearray()
        for chunk in resp.iter_bytes():
            self._keep(body, chunk)
            if time.monotonic() > deadline:  # a trickle of quick reads: over timeout_s in all (httpx's is per read)
                raise LinkError(f"prometheus {self.url}: no answer within {self.timeout:g}s")
        return bytes(body)

    def _result(self, status: int, body: bytes) -> list[dict[str, Any]]:
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep ("[[[[..."), not a ValueError
            answer = None
        if not isinstance(answer, dict):
            what = f"HTTP {status}, " if status != 200 else ""
            raise LinkError(f"prometheus {self.url}: {what}not Prometheus's JSON: {body[:80]!r}")
        if status != 200 or answer.get("status") != "success":
            why = answer.get("error") or answer.get("errorType") or "no reason given"
            raise LinkError(f"prometheus {self.url}: HTTP {status}: {str(why)[:300]}")
        data = answer.get("data")
        if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise LinkError(f"prometheus {self.url}: the answer is not an instant vector")
        result = [s for s in data["result"] if isinstance(s, dict) and isinstance(s.get("value"), list) and len(s["value"]) == 2]
        # Labels are strings in Prometheus's JSON; any other (a null "gpu") would fail in gputui/sources/dcgm.py
        # with a TypeError, which no caller expects: that ended the feed for good, its hosts stale with no reason.
        for series in result:
            labels = series.setdefault("metric", {})
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                raise LinkError(f"prometheus {self.url}: not Prometheus's JSON: a series' labels are not strings: {labels!r:.80}")
        return result

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None


def read_token(path: str) -> str:
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LinkError(f"prometheus: cannot read bearer_token_file {path}: {exc.strerror}") from None
    if not token:
        raise LinkError(f"prometheus: bearer_token_file {path} is empty")
    return token


class Queries:
    """The PromQL of one refresh, with the site's selector in every one."""

    def __init__(self, settings: cfg.Prometheus) -> None:
        self.matchers = settings.selector.strip()[1:-1].strip() if settings.selector else ""
        self.host_label = settings.host_label
        hosts = [settings.host_label] if settings.host_label else list(dcgm.HOST_LABELS)
        self.by_host = ", ".join(hosts)
        self.by_gpu = ", ".join([*hosts, "gpu", "GPU_I_ID"])
        self.window = settings.xid_window

    def series(self, family: str) -> str:
        return f"{family}{{{self.matchers}}}" if self.matchers else family

    def values(self, families: Iterable[str]) -> str:
        """Every family's values in one query: by name, host, GPU and MIG instance (three labels, not twelve)."""
        names = "|".join(families)
        matchers = f'__name__=~"{names}"' + (f", {self.matchers}" if self.matchers else "")
        return f"max by (__name__, {self.by_gpu}) ({{{matchers}}})"

    def inventory(self) -> str:
        return self.series(dcgm.FB_USED)

    def scraped(self) -> str:
        return f"max by ({self.by_host}) (timestamp({self.series(dcgm.FB_USED)}))"

    def xid_changes(self) -> str:
        return f"max by ({self.by_gpu}) (changes({self.series(dcgm.XID)}[{self.window}]))"

    def hosts(self) -> str:
        return f"count by ({self.by_host}) ({self.series(dcgm.FB_USED)})"


class PrometheusFeed:
    """Reads the fleet once a refresh and hands each host its frames (or the failure)."""

    def __init__(self, settings: cfg.Prometheus, skip: Iterable[str] = ()) -> None:
        self.settings = settings
        self.client = PromClient(settings)
        self.queries = Queries(settings)
        self.skip = set(skip)
        self.queues: dict[str, asyncio.Queue[list[dict[str, Any]] | LinkError]] = {}
        self.hosts: dict[str, dcgm.HostFrames] = {}
        self.task: asyncio.Task[None] | None = None
        self.add: Callable[[Source], None] | None = None
        self.rng = random.Random()
        self.refreshes = 0  # reads of the whole fleet that worked (the benchmark's count)
        self.read_s: list[float] = []  # how long each of them took, queries and decoding (the benchmark's)

    # -- hosts ----------------------------------------------------------------------
    def discover(self) -> list[str]:
        result = self.client.query_now(self.queries.hosts())
        return self._names(result)

    def _names(self, result: list[dict[str, Any]]) -> list[str]:
        names = {dcgm.host_of(s.get("metric", {}), self.settings.host_label) for s in result}
        found = sorted(n for n in names if n is not None and n not in self.skip)
        if result and not found and not (names - {None}):
            label = self.settings.host_label or " or ".join(dcgm.HOST_LABELS)
            raise LinkError(
                f"prometheus {self.settings.url}: no series has the label {label}: set [prometheus] host_label "
                "(instance is common)"
            )
        return found

    def source(self, name: str) -> PrometheusHost:
        self.queues.setdefault(name, asyncio.Queue(maxsize=QUEUED))
        self.hosts.setdefault(name, dcgm.HostFrames(name, self.settings.scrape_interval_s))
        return PrometheusHost(name, self)

    def follow_new(self, add: Callable[[Source], None]) -> None:
        """Hosts found later are handed to ``add`` (the dashboard's runner), and reading starts now."""
        self.add = add
        self.ensure_running()

    # -- reading --------------------------------------------------------------------
    def ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                reading = await self.read()
                await self.deliver(reading)
            except Exception as error:  # anything but a LinkError is a bug here, yet never the end of the feed
                if not isinstance(error, LinkError):
                    log.exception("reading %s failed", self.settings.url)
                    error = LinkError(f"prometheus {self.settings.url}: internal error: {error!r} (will retry)")
                failures += 1
                for queue in self.queues.values():
                    _put(queue, error)
                delay = min(BACKOFF_MAX_S, self.settings.refresh_s * 2.0 ** min(failures, 8))
                await asyncio.sleep(delay * self.rng.uniform(0.5, 1.0))
                continue
            failures = 0
            self.refreshes += 1
            self.read_s.append(loop.time() - started)
            del self.read_s[:-1000]
            # Every refresh_s from the start of the last read, not after it: a read that took long is not added.
            await asyncio.sleep(max(0.0, started + self.settings.refresh_s - loop.time()))

    async def read(self) -> dcgm.Reading:
        """One refresh: every query at once; any failure fails the refresh (no half-fleet is shown as whole)."""
        q, label = self.queries, self.settings.host_label
        inventory, scraped, xids, values = await asyncio.gather(
            self.client.query(q.inventory()),
            self.client.query(q.scraped()),
            self.client.query(q.xid_changes()),
            self.client.query(q.values(f for f in dcgm.FAMILIES if f != dcgm.FB_USED)),
        )
        reading = await asyncio.to_thread(dcgm.Reading.of, inventory, scraped, xids, values, label)
        if reading.unlabelled and not reading.inventory:
            self._names(inventory)  # says which label is missing
        return reading

    async def deliver(self, reading: dcgm.Reading) -> None:
        for n, (name, keys) in enumerate(reading.hosts().items()):
            if name in self.skip:
                continue
            if name not in self.hosts:
                source = self.source(name)
                if self.add is None:
                    continue  # a command that reads once (snapshot, check): the hosts it started with
                self.add(source)
                # Its runner subscribes next, which empties its queue: frames made now were dropped, yet
                # counted as sent (no more until Prometheus scrapes the host again, up to an interval
                # away). Its first frames come with the next refresh.
                continue
            frames = self.hosts[name].frames(reading, keys)
            if frames:
                _put(self.queues[name], frames)
            if n % 64 == 63:
                await asyncio.sleep(0)  # a large fleet's frames are made between the screen's refreshes

    def subscribe(self, name: str) -> asyncio.Queue[list[dict[str, Any]] | LinkError]:
        """A host (re)connecting: what it missed is dropped, and its next frames start with a hello."""
        queue = self.queues[name]
        while not queue.empty():
            queue.get_nowait()
        self.hosts[name].static = None
        self.ensure_running()
        return queue

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        await self.client.close()


def _put(queue: asyncio.Queue[list[dict[str, Any]] | LinkError], item: list[dict[str, Any]] | LinkError) -> None:
    if queue.full():  # a host that falls behind loses old refreshes, never stalls the feed
        queue.get_nowait()
    queue.put_nowait(item)


def parse(frame: dict[str, Any]) -> Frame:
    """A frame made here, validated as any host's frame is (a bad value resets the host, never the app)."""
    try:
        return Hello.model_validate(frame) if frame["type"] == "hello" else Sample.model_validate(frame)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FrameError(f"malformed frame from prometheus: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


class PrometheusHost:
    """One host of the feed, as the runner follows it."""

    via: tuple[str, ...] = ()

    def __init__(self, name: str, feed: PrometheusFeed) -> None:
        self.name = name
        self.feed = feed

    async def follow(self, raw: LineTap, take: Callable[[Frame], None]) -> None:
        queue = self.feed.subscribe(self.name)
        while True:
            item = await queue.get()
            if isinstance(item, LinkError):
                raise item
            for frame in item:
                if raw.listening:  # a recorder keeps what the store was handed, as for an agent's lines
                    raw(json.dumps(frame, separators=(",", ":")).encode())
                take(parse(frame))

    async def send(self, command: dict[str, object]) -> None:
        raise LinkError("a host read through Prometheus takes no commands")

    async def close(self) -> None:
        return None  # the feed serves every host: the fleet closes it
