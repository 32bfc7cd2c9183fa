"""The agent as a Prometheus exporter: the latest sample under dcgm-exporter's names.

``gputui agent --metrics-listen HOST:PORT`` serves ``/metrics`` in the
Prometheus text format (0.0.4) with the metric names, ``# HELP``/``# TYPE``
and labels that NVIDIA's dcgm-exporter gives (its ``etc/default-counters.csv``
and ``dcp-metrics-included.csv``, and the label set its collector writes), so
that Grafana dashboards built for dcgm-exporter, and gputui's Prometheus
source, read it as they read dcgm-exporter.

The metrics themselves (names, types, help, where each value is read) are
:mod:`gputui.agent.dcgm_fields`; this module writes them out and serves them.

Nothing here calls NVML: :func:`metrics_text` formats the frames the sampler
has already made (a pure function of the hello, the latest sample and the
last XID of each GPU), and the server renders it when scraped. A value the
agent does not have (``null`` in the frame: NVML said not supported, or the
GPU is lost) has no series at all, never a 0.

Labels, in dcgm-exporter's order: ``gpu`` (NVML index), ``UUID``,
``pci_bus_id``, ``device`` (``nvidia<index>``), ``modelName``, then for a MIG
instance ``GPU_I_PROFILE`` and ``GPU_I_ID``, then ``Hostname`` and
``DCGM_FI_DRIVER_VERSION``, then a metric's own (``err_code``, ``err_msg``).
The agent knows no Kubernetes pods, so ``namespace``/``pod``/``container``
are never sent.

MIG: dcgm-exporter (its default "flex" device mode) reports a GPU in MIG mode
once per GPU instance, never as a whole: device-wide values (temperature,
power, clocks, errors) repeat on each instance's series, and the framebuffer
ones are the instance's own. This module does the same, so sums by ``gpu``
behave as they do on dcgm-exporter (and so do their pitfalls: summing
``DCGM_FI_DEV_POWER_USAGE`` over instances counts a board's power once per
instance there too).
"""

from __future__ import annotations

import gzip
import re
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from gputui.agent.dcgm_fields import METRICS, UNKNOWN_XID, XID_METRIC, XID_NAMES
from gputui.agent.xid_events import ERROR_KEY as XID_ERROR_KEY  # in field_errors: this GPU's XIDs cannot be heard

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_HOST = "127.0.0.1"  # a bare port listens on loopback only: wider exposure is asked for
FIRST_SAMPLE_WAIT_S = 2.0  # a scrape before the first sample waits this long for it

Frame = Dict[str, Any]
Labels = List[Tuple[str, str]]
# -- the text format ------------------------------------------------------------


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, quote, newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: Any, double: bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if double:
        return "%f" % float(value)
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return "%d" % int(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class Entity(NamedTuple):
    """What one series set is about: a GPU, or one GPU instance of a MIG GPU."""

    labels: Labels
    static: Dict[str, Any]
    gpu: Dict[str, Any]  # the sample's values, the instance's own memory for a MIG instance
    gpu_index: int


def _entities(hello: Frame, sample: Frame) -> List[Entity]:
    statics = {g.get("index"): g for g in hello.get("gpus") or [] if isinstance(g, dict)}
    host = hello.get("host")
    driver = hello.get("driver_version")
    out = []
    for gpu in sample.get("gpus") or []:
        index = gpu.get("index")
        if not isinstance(index, int):
            continue
        static = statics.get(index, {})
        base: Labels = [
            ("gpu", str(index)),
            ("UUID", _text(static.get("uuid"))),
            ("pci_bus_id", _text(static.get("pci_bus_id"))),
            ("device", "nvidia%d" % index),
            ("modelName", _text(static.get("name"))),
        ]
        tail: Labels = []
        if host:
            tail.append(("Hostname", str(host)))
        if driver:
            tail.append(("DCGM_FI_DRIVER_VERSION", str(driver)))
        instances = _gpu_instances(static, gpu)
        if not instances:
            out.append(Entity(base + tail, static, gpu, index))
            continue
        for profile, gi_id, own in instances:
            values = dict(gpu)
            values.update(own)
            out.append(Entity([*base, ("GPU_I_PROFILE", profile), ("GPU_I_ID", str(gi_id)), *tail], static, values, index))
    return out


def _gpu_instances(static: Dict[str, Any], gpu: Dict[str, Any]) -> List[Tuple[str, int, Dict[str, Any]]]:
    """A MIG GPU's GPU instances: (profile, GPU instance id, own memory values),
    one per GPU instance (its compute instances share its memory)."""
    devices = static.get("mig_devices")
    if not static.get("mig_enabled") or not devices:
        return []
    use = {u.get("index"): u for u in gpu.get("mig") or [] if isinstance(u, dict)}
    seen = set()
    out = []
    for device in devices:
        gi_id = device.get("gpu_instance_id")
        if not isinstance(gi_id, int) or gi_id in seen:
            continue
        seen.add(gi_id)
        used = (use.get(device.get("index")) or {}).get("mem_used_mib")
        profile = device.get("profile") or ""
        # A compute instance smaller than its GPU instance is named "1c.3g.40gb": the GPU instance is "3g.40gb".
        if profile.count(".") == 2:
            profile = profile.split(".", 1)[1]
        own = {"mem_used_mib": used, "mem_total_mib": device.get("mem_total_mib")}
        out.append((profile, gi_id, own))
    return out


def _xid_value(entity: Entity, last_xids: Dict[int, int]) -> Optional[int]:
    """The GPU's last XID; 0 ("No Error") when the agent hears this GPU's XIDs
    and none came; no series when it cannot hear them and knows of none."""
    if entity.gpu_index in last_xids:
        return last_xids[entity.gpu_index]
    if entity.gpu.get("lost") or XID_ERROR_KEY in (entity.gpu.get("field_errors") or {}):
        return None
    return 0


def metrics_text(hello: Optional[Frame], sample: Optional[Frame], last_xids: Optional[Dict[int, int]] = None) -> str:
    """The exposition text of one sample: dcgm-exporter's families, one series
    per GPU (or MIG GPU instance) and value the sample has. ``last_xids`` maps a
    GPU index to the last XID seen on it (:class:`Latest` keeps it across samples);
    without it, XIDs show only where this sample's events have them."""
    if not hello or not sample:
        return ""
    xids = dict(last_xids) if last_xids is not None else last_xid_of(sample.get("events") or [], {})
    entities = _entities(hello, sample)
    lines: List[str] = []
    for metric in METRICS:
        series: List[str] = []
        for entity in entities:
            attrs: Labels = []
            if metric.name == XID_METRIC:
                value: Any = _xid_value(entity, xids)
                if value is not None:
                    attrs = [("err_code", str(value)), ("err_msg", XID_NAMES.get(value, UNKNOWN_XID))]
            elif entity.gpu.get("lost"):
                value = None
            else:
                value = metric.get(entity.static, entity.gpu)
            if value is None or (isinstance(value, float) and value != value):
                continue
            labels = ",".join('%s="%s"' % (k, escape_label(v)) for k, v in entity.labels + attrs)
            series.append("%s{%s} %s" % (metric.name, labels, format_value(value, metric.double)))
        if series:
            lines.append("# HELP %s %s" % (metric.name, escape_help(metric.help)))
            lines.append("# TYPE %s %s" % (metric.name, metric.kind))
            lines.extend(series)
    return "\n".join(lines) + "\n" if lines else ""


def last_xid_of(events: Sequence[Dict[str, Any]], known: Dict[int, Tuple[float, int]]) -> Dict[int, int]:
    """Fold a sample's XID events into ``known`` (GPU index -> (time, XID)), the
    latest winning; returns GPU index -> XID."""
    for event in events:
        gpu, xid, t = event.get("gpu"), event.get("xid"), event.get("t")
        if not isinstance(gpu, int) or not isinstance(xid, int):
            continue
        when = float(t) if isinstance(t, (int, float)) else 0.0
        if gpu not in known or when >= known[gpu][0]:
            known[gpu] = (when, xid)
    return {gpu: xid for gpu, (_, xid) in known.items()}


def stale_after(interval_s: float) -> float:
    """How old a sample may be and still be served: a sampling loop stuck in
    the driver (a GPU in trouble can hang NVML) must not look like a healthy,
    unchanging GPU to Prometheus: its series go instead."""
    return max(5.0 * interval_s, 30.0)


class Latest:
    """The latest hello and sample, and each GPU's last XID, shared between the
    sampling loop (which hands over each frame) and the server's threads (which
    render on a scrape). A sample older than ``stale_after_s`` is not served."""

    def __init__(self, stale_after_s: Optional[float] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.hello: Optional[Frame] = None
        self.sample: Optional[Frame] = None
        self.sample_at = 0.0
        self.xids: Dict[int, Tuple[float, int]] = {}
        self.stale_after_s = stale_after_s
        self.clock = clock

    def set_hello(self, hello: Frame) -> None:
        with self.lock:
            self.hello = hello

    def update(self, sample: Frame) -> None:
        """Called with every sample: an XID is in one sample's events only."""
        with self.lock:
            last_xid_of(sample.get("events") or [], self.xids)
            self.sample = sample
            self.sample_at = self.clock()
        self.ready.set()

    def failed(self) -> None:
        """A sample failed: serve no values rather than the last good ones."""
        with self.lock:
            self.sample = None

    def render(self, wait_s: float = 0.0) -> str:
        if wait_s > 0:
            self.ready.wait(wait_s)
        with self.lock:
            hello, sample = self.hello, self.sample
            if self.stale_after_s is not None and self.clock() - self.sample_at > self.stale_after_s:
                sample = None
            xids = {gpu: xid for gpu, (_, xid) in self.xids.items()}
        return metrics_text(hello, sample, xids)


# -- the server -------------------------------------------------------------------


class ListenError(ValueError):
    """A --metrics-listen value that cannot be listened on, in words."""


def parse_listen(text: str) -> Tuple[str, int]:
    """``PORT`` (on 127.0.0.1), ``HOST:PORT`` or ``[IPV6]:PORT``."""
    value = text.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ListenError("expected [ADDRESS]:PORT for an IPv6 address, got %r" % text)
        port_text = rest[1:]
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        if ":" in host:
            raise ListenError("write an IPv6 address in brackets, as [%s]:PORT" % host)
        if not host:
            raise ListenError(
                "no address before the port in %r: give 0.0.0.0:%s to listen on every interface" % (text, port_text)
            )
    else:
        host, port_text = DEFAULT_HOST, value
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise ListenError("not a port (1 to 65535): %r" % port_text)
    return host, int(port_text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    latest: Latest

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks the resolver for the host's full name,
        # which can hang on a host with broken DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _Server6(_Server):
    address_family = socket.AF_INET6


INDEX_PAGE = (
    "<html><head><title>gputui agent</title></head><body>"
    '<h1>gputui agent</h1><p>GPU metrics in dcgm-exporter\'s names: <a href="/metrics">/metrics</a></p>'
    "</body></html>\n"
)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "gputui-agent"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a kept-alive connection may idle before its thread lets go

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                text = self.server.latest.render(wait_s=FIRST_SAMPLE_WAIT_S)
            except Exception as exc:  # a bug here must not end the agent, nor show a traceback to a scraper
                sys.stderr.write("gputui agent: /metrics failed: %s: %s\n" % (type(exc).__name__, exc))
                self._send(500, "text/plain; charset=utf-8", b"cannot render the metrics, see the agent's stderr\n", body)
                return
            data = text.encode("utf-8")
            gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
            self._send(200, CONTENT_TYPE, gzip.compress(data, 6) if gzipped else data, body, gzipped)
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", INDEX_PAGE.encode("utf-8"), body)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: the metrics are at /metrics\n", body)

    def _send(self, code: int, content_type: str, data: bytes, body: bool, gzipped: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line on stderr per scrape


class MetricsServer:
    """``/metrics`` over HTTP from a daemon thread; binds at construction, so
    a bad address or a port in use fails before the agent starts sampling."""

    def __init__(self, host: str, port: int, latest: Latest) -> None:
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ListenError("cannot listen on %s:%d: unknown address (%s)" % (host, port, exc.strerror)) from None
        family, address = infos[0][0], (str(infos[0][4][0]), int(infos[0][4][1]))
        cls = _Server6 if family == socket.AF_INET6 else _Server
        shown = "[%s]:%d" % (host, port) if family == socket.AF_INET6 else "%s:%d" % (host, port)
        try:
            self.httpd = cls(address, _Handler)
        except OSError as exc:
            raise ListenError("cannot listen on %s: %s" % (shown, (exc.strerror or str(exc)).lower())) from None
        self.httpd.latest = latest
        self.latest = latest
        self.address = shown
        self.thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.5,), name="metrics", daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.thread is not None:
            self.httpd.shutdown()
        self.httpd.server_close()
