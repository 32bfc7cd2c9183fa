"""The Prometheus source against a real Prometheus (Debian's package) that scrapes
gputui agents in --metrics-listen mode on simulated GPUs and dcgm-exporter-format
endpoints with planted values: what `gputui snapshot` and `gputui check` read
through it, per host and GPU, and a node turning stale when its exporter stops."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gputui import config as cfg
from gputui.fleet.runner import FleetRunner
from gputui.fleet.store import FleetStore, HostState
from gputui.sources.fleet import from_config
from gputui.sources.prometheus import PrometheusFeed
from tests.prometheus_server import DcgmEndpoint, PrometheusServer, dcgm_text, free_port, start_agent, stopped_at_exit
from tests.waiting import wait_true, wait_until

# What the dcgm-exporter on dcgm-node-1 sends: its default counters (no ECC, no retired pages),
# GPU 3 held by a Kubernetes pod.
PLANTED = [
    {"DCGM_FI_DEV_GPU_UTIL": 97, "DCGM_FI_DEV_MEM_COPY_UTIL": 41, "DCGM_FI_DEV_FB_USED": 61234, "DCGM_FI_DEV_FB_FREE": 20000,
     "DCGM_FI_DEV_GPU_TEMP": 71, "DCGM_FI_DEV_MEMORY_TEMP": 78, "DCGM_FI_DEV_POWER_USAGE": 612.5,
     "DCGM_FI_DEV_SM_CLOCK": 1980, "DCGM_FI_DEV_MEM_CLOCK": 2619, "DCGM_FI_DEV_XID_ERRORS": 0,
     "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": 3, "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 2,
     "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": 0, "DCGM_FI_DEV_ROW_REMAP_FAILURE": 0}
    for _ in range(4)
]  # fmt: skip
PLANTED[2] = {**PLANTED[2], "DCGM_FI_DEV_GPU_TEMP": 44, "DCGM_FI_DEV_GPU_UTIL": 0, "DCGM_FI_DEV_FB_USED": 1}
PLANTED[1] = {**PLANTED[1], "DCGM_FI_DEV_MEMORY_TEMP": math.nan}  # an exporter's NaN: null and why, never a number
POD = {3: {"container": "trainer", "namespace": "ml-team", "pod": "llm-ft-7f9c"}}
QUIET = [dict(PLANTED[2]) for _ in range(2)]  # dcgm-node-2: idle and cool, until its XID gauge moves


@dataclass
class Stack:
    prometheus: PrometheusServer
    node1: DcgmEndpoint
    node2: DcgmEndpoint
    unlabelled: DcgmEndpoint  # an exporter whose series have no Hostname (a relabelling that dropped it)
    doomed: subprocess.Popen[bytes]  # agent-c: stopped by the staleness test


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("agent-a", "agent-b", "agent-c")}
    agents = [start_agent("agent-a", "healthy", ports["agent-a"]), start_agent("agent-b", "mixed", ports["agent-b"])]
    agents.append(start_agent("agent-c", "healthy", ports["agent-c"]))
    node1 = DcgmEndpoint(dcgm_text("dcgm-node-1", PLANTED, POD))
    node2 = DcgmEndpoint(dcgm_text("dcgm-node-2", QUIET))
    unlabelled = DcgmEndpoint(dcgm_text("x", QUIET, {0: {"Hostname": None}, 1: {"Hostname": None}}))
    targets = {
        "gputui-agent": [f"127.0.0.1:{port}" for port in ports.values()],
        "dcgm-exporter": [node1.address, node2.address],
        "dcgm-nolabel": [unlabelled.address],
    }
    prometheus = PrometheusServer(tmp_path_factory.mktemp("prometheus"), targets)
    with stopped_at_exit(agents):
        try:
            prometheus.start()
            prometheus.wait_for_hosts(["agent-a", "agent-b", "agent-c", "dcgm-node-1", "dcgm-node-2"])
            wait_until(lambda: prometheus.value('count(DCGM_FI_DEV_FB_USED{job="dcgm-nolabel"})'), "the unlabelled scrape")
            yield Stack(prometheus, node1, node2, unlabelled, agents[2])
        finally:
            prometheus.stop()
            for endpoint in (node1, node2, unlabelled):
                endpoint.close()


def gputui(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it; no config of the machine's user is read."""
    argv = [sys.executable, "-m", "gputui", *args] + (["--config", str(config)] if config else [])
    env = {**os.environ, "GPUTUI_CONFIG": "/nonexistent/gputui-test/config.toml"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)


def write_config(tmp_path: Path, url: str, **settings: object) -> Path:
    lines = [f'url = "{url}"', "refresh_s = 0.5", "scrape_interval_s = 1.0"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path = tmp_path / "config.toml"
    path.write_text("[prometheus]\n" + "\n".join(lines) + "\n")
    return path


def test_snapshot_reads_every_host_and_gpu_with_the_planted_values(stack: Stack, tmp_path: Path) -> None:
    r = gputui("snapshot", "--prometheus", stack.prometheus.url, "--format", "json")  # no config file at all
    assert r.returncode == 0, r.stderr
    snapshot = json.loads(r.stdout)
    assert snapshot["schema"] == "gputui.snapshot/1"
    hosts = {h["name"]: h for h in snapshot["hosts"]}
    assert set(hosts) == {"agent-a", "agent-b", "agent-c", "dcgm-node-1", "dcgm-node-2"}
    node = hosts["dcgm-node-1"]
    assert (node["state"], node["source"], node["driver_version"]) == ("live", "prometheus", "550.54.15")
    gpus = {g["index"]: g for g in node["gpus"]}
    assert sorted(gpus) == [0, 1, 2, 3]
    g0, g2 = gpus[0], gpus[2]
    assert (g0["temp_c"], g0["mem_temp_c"], g0["util_pct"], g0["mem_util_pct"]) == (71, 78, 97, 41)
    assert (g0["mem_used_mib"], g0["mem_total_mib"], g0["power_w"], g0["sm_clock_mhz"]) == (61234, 81234, 612.5, 1980)
    assert (g0["uuid"], g0["name"], g0["pci_bus_id"]) == ("GPU-dcgm-node-1-0000", "NVIDIA H100 80GB HBM3", "00000000:17:00.0")
    assert g0["remapped_rows"]["correctable"] == 2 and g0["pcie_replays"] == 3
    assert (g2["temp_c"], g2["util_pct"], g2["mem_used_mib"]) == (44, 0, 1)
    # Not exported by dcgm-exporter's default counters: null and said, never 0.
    assert g0["ecc"] is None and g0["retired_pages"] is None
    assert {"ecc", "retired pages"} <= set(node["missing_fields"])
    assert g0["temp_slowdown_c"] == 89  # the model's default: dcgm-exporter does not send it
    assert gpus[3]["holder"] == "ml-team/llm-ft-7f9c/trainer" and g0["holder"] is None
    assert gpus[1]["mem_temp_c"] is None and "NaN" in gpus[1]["field_errors"]["mem_temp_c"]
    assert gpus[1]["temp_c"] == 71 and node["state"] == "live"  # the rest of the GPU, and the host, as before
    # The agents' own exporters, read back: every GPU, with the agent's facts.
    for name in ("agent-a", "agent-b"):
        agent = hosts[name]
        assert agent["state"] == "live" and len(agent["gpus"]) == 2, agent
        assert all(g["uuid"] and g["temp_c"] is not None and g["mem_total_mib"] for g in agent["gpus"]), agent


async def test_one_read_of_the_fleet_costs_the_same_queries_whatever_its_size(stack: Stack) -> None:
    """Queries per refresh do not grow with hosts: Prometheus's own count of API queries, for the whole
    fleet and for one host selected."""

    counts = []
    for selector in ("", '{Hostname="dcgm-node-1"}'):
        feed = PrometheusFeed(cfg.Prometheus(url=stack.prometheus.url, selector=selector))
        before = stack.prometheus.queries_answered()
        reading = await feed.read()
        counts.append(stack.prometheus.queries_answered() - before)
        await feed.close()
        assert len(reading.hosts()) == (5 if not selector else 1), selector
    assert counts == [4, 4]


def test_an_xid_rising_on_a_node_is_critical_in_check(stack: Stack, tmp_path: Path) -> None:
    # The URL on the command line (as an operator types it), the selector from the config.
    config = write_config(tmp_path, "http://127.0.0.1:9", selector='{Hostname="dcgm-node-2"}')
    url = stack.prometheus.url
    calm = gputui("check", "--prometheus", url, "--format", "json", config=config)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert json.loads(calm.stdout)["hosts"] == 1
    failing = [dict(QUIET[0]), {**QUIET[1], "DCGM_FI_DEV_XID_ERRORS": 79}]
    stack.node2.body = dcgm_text("dcgm-node-2", failing)
    wait_until(lambda: stack.prometheus.value('max(DCGM_FI_DEV_XID_ERRORS{Hostname="dcgm-node-2"})') == 79, "the XID scraped", 30)
    r = gputui("check", "--prometheus", url, "--format", "json", config=config)
    assert r.returncode == 2, r.stdout + r.stderr
    alerts = json.loads(r.stdout)["alerts"]
    xid = [a for a in alerts if a["host"] == "dcgm-node-2" and a["gpu"] == 1 and "79" in a["title"]]
    assert xid and xid[0]["severity"] == "critical", alerts


async def test_a_node_whose_exporter_stops_turns_stale_never_live(stack: Stack, tmp_path: Path) -> None:
    config = cfg.load(write_config(tmp_path, stack.prometheus.url, selector='{Hostname="agent-c"}'))
    fleet = from_config(config)
    runner = FleetRunner(fleet.sources, fleet.store)
    store: FleetStore = fleet.store
    runner.start()
    try:
        await wait_true(lambda: store.hosts["agent-c"].state(store.clock()) is HostState.LIVE, "agent-c live", 30)
        stack.doomed.terminate()
        stack.doomed.wait(timeout=10)
        stopped = time.monotonic()
        await wait_true(lambda: store.hosts["agent-c"].state(store.clock()) is HostState.STALE, "agent-c stale", 30)
        record = store.hosts["agent-c"]
        # Stale within a few scrape intervals: as an SSH host whose agent went quiet.
        assert time.monotonic() - stopped < record.stale_after * record.interval_s + 3 * config.prometheus.refresh_s + 2  # type: ignore[union-attr]
    finally:
        await runner.stop()
        await fleet.close()


def test_series_without_the_host_label_say_which_setting_to_change(stack: Stack, tmp_path: Path) -> None:
    config = write_config(tmp_path, stack.prometheus.url, selector='{job="dcgm-nolabel"}')
    r = gputui("snapshot", config=config)
    assert r.returncode == 2
    assert "no series has the label Hostname or hostname: set [prometheus] host_label" in r.stderr, r.stderr
    config = write_config(tmp_path, stack.prometheus.url, selector='{job="dcgm-nolabel"}', host_label="instance")
    r = gputui("snapshot", "--format", "json", config=config)
    assert r.returncode == 0, r.stderr
    [host] = json.loads(r.stdout)["hosts"]
    assert host["name"] == stack.unlabelled.address and [g["temp_c"] for g in host["gpus"]] == [44, 44]


def test_an_answer_over_the_cap_is_refused_not_read(stack: Stack, tmp_path: Path) -> None:
    """The hosts are listed (that answer is small), then every read of their values is over the cap:
    each host is down with the reason, and snapshot says no host answered (exit 1)."""
    config = write_config(tmp_path, stack.prometheus.url, max_answer_mib=0.001)
    r = gputui("snapshot", "--format", "json", config=config)
    assert r.returncode == 1, r.stderr
    hosts = json.loads(r.stdout)["hosts"]
    assert {"agent-a", "agent-b", "dcgm-node-1", "dcgm-node-2"} <= {h["name"] for h in hosts}
    for host in hosts:
        assert host["state"] == "down" and host["gpus"] == [], host
        assert "an answer over 0.001 MiB was refused (max_answer_mib)" in host["error"], host


async def test_prometheus_down_marks_its_hosts_down_with_why_and_they_return_with_it(stack: Stack, tmp_path: Path) -> None:
    """Prometheus stopped: every host it feeds is down, saying why (never its old values as live); started
    again on the same data, the feed's retries bring them back. Last in this module: it restarts Prometheus."""
    config = cfg.load(write_config(tmp_path, stack.prometheus.url, selector='{Hostname=~"agent-a|dcgm-node-1"}'))
    fleet = from_config(config)
    runner = FleetRunner(fleet.sources, fleet.store)
    store = fleet.store
    runner.start()
    try:
        names = ("agent-a", "dcgm-node-1")
        await wait_true(lambda: all(store.hosts[n].state(store.clock()) is HostState.LIVE for n in names), "both live", 30)
        stack.prometheus.stop()
        await wait_true(lambda: all(store.hosts[n].state(store.clock()) is HostState.DOWN for n in names), "both down", 30)
        assert all("cannot connect" in (store.hosts[n].error or "") for n in names), [store.hosts[n].error for n in names]
        stack.prometheus.start()
        await wait_true(lambda: all(store.hosts[n].state(store.clock()) is HostState.LIVE for n in names), "both back", 90)
    finally:
        await runner.stop()
        await fleet.close()
