"""The agent as a Prometheus exporter: a real agent process, scraped over HTTP,
checked by promtool and against what the simulated GPUs hold."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from gputui.agent.dcgm_fields import PROMTOOL_NAMING_LINTS
from gputui.agent.exporter import CONTENT_TYPE, Latest, metrics_text, parse_listen, stale_after
from gputui.sim.scenarios import H100_SXM
from tests.waiting import wait_until

# promtool comes with Debian's prometheus package: with the Prometheus tests, out of `make test-fast`.
pytestmark = pytest.mark.prometheus

# promtool's lint findings that dcgm-exporter's own names and labels bring
# (upper-case names, "UUID" and "modelName" labels, counters without _total):
# kept, since Grafana dashboards for dcgm-exporter query exactly those names.


class Series(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


SERIES = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)\{(.*)\} (\S+)$")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse(text: str) -> list[Series]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES.match(line)
        assert m, f"not a series line: {line!r}"
        labels = {k: unescape(v) for k, v in LABEL.findall(m.group(2))}
        out.append(Series(m.group(1), labels, float(m.group(3))))
    return out


def assert_unique(series: list[Series]) -> None:
    """No two series of a name with the same labels (promtool does not check that)."""
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in series]
    assert len(keys) == len(set(keys)), "a series is sent twice"


def by_gpu(series: list[Series], name: str) -> dict[str, float]:
    found = [s for s in series if s.name == name]
    assert len({s.labels["gpu"] for s in found}) == len(found), f"{name}: more than one series for a GPU"
    return {s.labels["gpu"]: s.value for s in found}


def promtool_check(text: str) -> None:
    """promtool's errors fail; of its lint findings only the naming ones that
    come with dcgm-exporter's names are accepted. Its exit status: 0 clean,
    3 lint findings, 1 the text did not parse ("error while linting"); it
    writes either on stderr, one finding a line."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool not found: install Debian's 'prometheus' package (apt-get install prometheus; `make test` does as root)"
        )
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 3), f"promtool rejects the metrics (exit {done.returncode}): {done.stderr or done.stdout}"
    findings = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    others = [line for line in findings if not any(line.endswith(lint) for lint in PROMTOOL_NAMING_LINTS)]
    assert others == [], f"promtool finds more than dcgm-exporter's naming: {others[:5]}"
    if done.returncode == 3:
        assert findings, "promtool reported lint problems without naming them"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gputui.agent", *args]


class Agent:
    """An agent process serving /metrics; with ``--frames`` its samples are collected too."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.samples: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            agent_cmd(*args, "--metrics-listen", f"127.0.0.1:{self.port}", "--state-dir", str(tmp_path / "state")),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            frame = json.loads(line)
            if frame.get("type") == "sample":
                with self.lock:
                    self.samples.append(frame)

    def get(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body); the agent must not have exited."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8")

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            assert self.proc.stderr is not None
            raise AssertionError(f"the agent exited ({self.proc.returncode}): {self.proc.stderr.read()}")
        try:
            self.get("/")
        except OSError:
            return False
        return True

    def scrape(self) -> str:
        status, content_type, body = self.get("/metrics")
        assert status == 200 and content_type == CONTENT_TYPE
        return body

    def sample_count(self) -> int:
        with self.lock:
            return len(self.samples)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def incident(tmp_path: Path) -> Iterator[Agent]:
    agent = Agent(tmp_path, "--sim", "incident", "--gpus", "4", "--interval", "0.2", "--host-name", "node-x")
    try:
        wait_until(agent.answers, "the agent's metrics port to answer", timeout=30)
        yield agent
    finally:
        agent.stop()


def xid_shown(agent: Agent, gpu: str, xid: int) -> list[Series] | None:
    series = parse(agent.scrape())
    hit = [s for s in series if s.name == "DCGM_FI_DEV_XID_ERRORS" and s.labels["gpu"] == gpu and s.value == xid]
    return series if hit else None


def test_a_scrape_passes_promtool_with_dcgm_exporter_names_and_labels(incident: Agent) -> None:
    # The incident's ECC GPU (3 of 4) has XID 48 half a second after the agent listens.
    series = wait_until(lambda: xid_shown(incident, "3", 48), "XID 48 on GPU 3 in /metrics", timeout=30)
    text = incident.scrape()
    promtool_check(text)
    assert_unique(series)
    assert "\n# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n" in text
    assert "\n# TYPE DCGM_FI_DEV_PCIE_REPLAY_COUNTER counter\n" in text
    assert "# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.\n" in text

    assert {s.labels["Hostname"] for s in series} == {"node-x"}
    assert {s.labels["gpu"] for s in series} == {"0", "1", "2", "3"}
    assert {s.labels["DCGM_FI_DRIVER_VERSION"] for s in series} == {"550.127.08"}
    for s in series:
        assert s.labels["device"] == "nvidia" + s.labels["gpu"]
        assert "GPU_I_ID" not in s.labels and "pod" not in s.labels
    healthy = [s for s in series if s.labels["gpu"] != "0"]  # GPU 0 is the one fallen off the bus
    assert all(s.labels["UUID"].startswith("GPU-") and s.labels["pci_bus_id"].startswith("00000000:") for s in healthy)
    assert {s.labels["modelName"] for s in healthy} == {H100_SXM.name}

    # The board's facts as the simulator has them.
    assert by_gpu(series, "DCGM_FI_DEV_SLOWDOWN_TEMP") == dict.fromkeys(["1", "2", "3"], H100_SXM.slowdown_c)
    assert by_gpu(series, "DCGM_FI_DEV_FB_TOTAL") == dict.fromkeys(["1", "2", "3"], H100_SXM.mem_total_mib)
    assert by_gpu(series, "DCGM_FI_DEV_POWER_MGMT_LIMIT_MAX") == dict.fromkeys(["1", "2", "3"], H100_SXM.tdp_w)
    temps = by_gpu(series, "DCGM_FI_DEV_GPU_TEMP")
    assert set(temps) == {"1", "2", "3"} and temps["2"] > temps["1"]  # GPU 2 throttles, hot
    assert by_gpu(series, "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS")["3"] > 0

    # The last XID of each GPU, with dcgm-exporter's err_code/err_msg labels.
    xids = {s.labels["gpu"]: s for s in series if s.name == "DCGM_FI_DEV_XID_ERRORS"}
    assert (xids["3"].value, xids["3"].labels["err_code"], xids["3"].labels["err_msg"]) == (48, "48", "Double Bit ECC Error")
    assert (xids["0"].value, xids["0"].labels["err_code"]) == (79, "79")  # from the kernel log, before the agent ran
    assert (xids["1"].value, xids["1"].labels["err_msg"]) == (0, "No Error")


def test_values_the_gpus_cannot_give_have_no_series_never_zero(incident: Agent) -> None:
    series = parse(incident.scrape())
    names = {s.name for s in series}
    # H100 SXM boards have no fan, and row remapping replaced page retirement on them.
    assert "DCGM_FI_DEV_FAN_SPEED" not in names
    assert not {"DCGM_FI_DEV_RETIRED_SBE", "DCGM_FI_DEV_RETIRED_DBE", "DCGM_FI_DEV_RETIRED_PENDING"} & names
    # The lost GPU has its XID and nothing else.
    assert {s.name for s in series if s.labels["gpu"] == "0"} == {"DCGM_FI_DEV_XID_ERRORS"}


def test_the_index_page_names_metrics_and_other_paths_are_not_found(incident: Agent) -> None:
    status, _, body = incident.get("/")
    assert status == 200 and "/metrics" in body
    status, _, body = incident.get("/favicon.ico")
    assert status == 404 and "/metrics" in body


def test_scraped_values_are_a_sample_the_agent_took_and_mig_instances_have_their_labels(tmp_path: Path) -> None:
    args = ("--sim", "mixed", "--interval", "0.2", "--sim-processes", "synthetic", "--host-name", "node-m", "--frames")
    agent = Agent(tmp_path, *args)
    try:
        wait_until(agent.answers, "the agent's metrics port to answer", timeout=30)
        wait_until(lambda: agent.sample_count() >= 2, "two samples on stdout")
        text = agent.scrape()
        seen = agent.sample_count()
        wait_until(lambda: agent.sample_count() >= seen + 2, "two more samples on stdout")
        with agent.lock:
            samples = list(agent.samples)
    finally:
        agent.stop()
    promtool_check(text)
    series = parse(text)
    assert_unique(series)
    whole = [s for s in series if "GPU_I_ID" not in s.labels]

    def scraped(name: str) -> dict[str, float]:
        return by_gpu(whole, name)

    def taken(sample: dict[str, Any], key: str) -> dict[str, float]:
        return {str(g["index"]): g[key] for g in sample["gpus"] if g.get(key) is not None and not g.get("mig")}

    # One sample the agent wrote holds every whole GPU's scraped temperature, power and memory at once.
    now = (scraped("DCGM_FI_DEV_GPU_TEMP"), scraped("DCGM_FI_DEV_POWER_USAGE"), scraped("DCGM_FI_DEV_FB_USED"))
    assert now[0] and now[1] and now[2]
    assert any(now == (taken(s, "temp_c"), taken(s, "power_w"), taken(s, "mem_used_mib")) for s in samples), now

    # The A100 40GB boards report no memory temperature: no series; the 80GB one has it.
    mem_temp = {s.labels["gpu"] for s in series if s.name == "DCGM_FI_DEV_MEMORY_TEMP"}
    assert mem_temp == {"3"}

    # GPU 3 is in MIG mode: reported per GPU instance, as dcgm-exporter's flex mode does.
    mig = [s for s in series if s.labels["gpu"] == "3"]
    assert mig and all("GPU_I_ID" in s.labels for s in mig)
    instances = {(s.labels["GPU_I_ID"], s.labels["GPU_I_PROFILE"]) for s in mig}
    assert instances == {("1", "3g.40gb"), ("5", "2g.20gb"), ("13", "1g.10gb")}
    totals = {s.labels["GPU_I_ID"]: s.value for s in mig if s.name == "DCGM_FI_DEV_FB_TOTAL"}
    assert totals == {"1": 40192, "5": 19968, "13": 9728}
    used = {s.labels["GPU_I_ID"]: s.value for s in mig if s.name == "DCGM_FI_DEV_FB_USED"}
    assert set(used) == set(totals) and all(used[i] <= totals[i] for i in used)
    assert "DCGM_FI_DEV_GPU_UTIL" not in {s.name for s in mig}  # NVML gives none in MIG mode


@pytest.mark.parametrize(
    ("listen", "words"),
    [("127.0.0.1:notaport", "not a port"), (":9400", "0.0.0.0:9400"), ("no-such-host.invalid:9400", "unknown address")],
)
def test_a_bad_listen_address_is_one_line_and_exit_2(listen: str, words: str) -> None:
    done = subprocess.run(agent_cmd("--sim", "healthy", "--metrics-listen", listen), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--metrics-listen" in done.stderr and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            agent_cmd("--sim", "healthy", "--metrics-listen", f"127.0.0.1:{port}"), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert done.stderr == f"gputui agent: --metrics-listen: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_a_bare_port_listens_on_loopback_only() -> None:
    assert parse_listen("9400") == ("127.0.0.1", 9400)
    assert parse_listen("0.0.0.0:9400") == ("0.0.0.0", 9400)
    assert parse_listen("[::1]:9400") == ("::1", 9400)


def test_label_and_help_text_are_escaped_and_nothing_is_served_before_the_first_sample() -> None:
    assert metrics_text(None, None) == ""
    odd = 'A "quoted"\\ name\nwith a newline'
    hello = {"host": "node\\x", "driver_version": "550", "gpus": [{"index": 0, "uuid": "GPU-1", "name": odd, "pci_bus_id": "0"}]}
    sample = {"gpus": [{"index": 0, "temp_c": 40, "mem_used_mib": None, "lost": False}]}
    text = metrics_text(hello, sample)
    promtool_check(text)
    (temp,) = [s for s in parse(text) if s.name == "DCGM_FI_DEV_GPU_TEMP"]
    assert (temp.value, temp.labels["modelName"], temp.labels["Hostname"]) == (40, odd, "node\\x")
    assert "DCGM_FI_DEV_FB_USED" not in text and "DCGM_FI_DEV_FB_FREE" not in text


def test_throttle_reasons_are_dcgm_s_bitmask_and_unknown_ones_absent() -> None:
    hello = {"host": "h", "gpus": [{"index": 0}, {"index": 1}]}
    sample = {
        "gpus": [
            {"index": 0, "throttle": ["hw_thermal_slowdown", "sw_thermal_slowdown"]},
            {"index": 1, "throttle": None},
        ]
    }
    reasons = by_gpu(parse(metrics_text(hello, sample)), "DCGM_FI_DEV_CLOCKS_EVENT_REASONS")
    assert reasons == {"0": 0x40 | 0x20}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_sample_too_old_or_failed_is_not_served() -> None:
    clock = Clock()
    latest = Latest(stale_after(1.0), clock=clock)
    latest.set_hello({"host": "h", "gpus": [{"index": 0}]})
    assert latest.render() == ""  # no sample yet: nothing, not an error
    latest.update({"gpus": [{"index": 0, "temp_c": 50}]})
    assert "DCGM_FI_DEV_GPU_TEMP" in latest.render()
    clock.now += stale_after(1.0) + 1  # the sampling loop is stuck in the driver
    assert latest.render() == ""
    latest.update({"gpus": [{"index": 0, "temp_c": 51}]})
    assert "DCGM_FI_DEV_GPU_TEMP" in latest.render()
    latest.failed()
    assert latest.render() == ""
