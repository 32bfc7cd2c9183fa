"""Slurm as the site sees it, read by gputui from a real controller: a job
started with ``srun --gres=gpu:1`` shows on the GPU Slurm gave it (id, name,
user, partition, limit) in ``gputui snapshot``, the dashboard's allocation and
processes tabs and the idle-holding alert; a node drained with ``scontrol
update`` outside gputui shows as drained with who and why, in the overview,
the host screen and the JSON.

The cluster (tests/slurm_cluster.py) runs on loopback with one slurmd, for
node gt-a, whose two GPUs are GRES backed by stand-in device files; gt-b and
gt-c have no slurmd and stay UNKNOWN, which Slurm still drains and reports.
Host ``node-a`` is Slurm's gt-a through ``slurm_node``; host ``gt-c`` is its
own node name.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from gputui import config as cfg
from gputui.config import Slurm
from gputui.health.model import Severity
from gputui.slurm.reader import SlurmReader
from gputui.ui.launch import configured_app
from gputui.ui.panels.allocation import AllocationPanel
from gputui.ui.panels.processes import ProcessesPanel
from gputui.ui.screens.host_screen import HostScreen
from gputui.ui.widgets.slurm_text import slurm_jobs_given
from tests.action_cli import gputui
from tests.health_data import HOST, T0, Fleet, gpu
from tests.screen_reading import screen_text
from tests.slurm_cluster import SlurmCluster
from tests.ui_apps import SIZE, open_allocation, preview, start, status
from tests.waiting import wait_for, wait_until

JOB_NAME = 'train "llm" $(touch /tmp/gt-slurm-pwned) ✓'
DRAIN_REASON = "psu swap; see 'DC-7' $(id)"
# gt-c runs no slurmd: once slurmctld's ping of it has failed (when, within a module's run, depends on
# the machine's speed) Slurm flags it not responding, as sinfo's "drained*", and gputui says so.
DRAINED_WORD = r"drained( \(not responding\))?"


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with SlurmCluster(gpus=2, loopback_node="gt-a") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def job(slurm: SlurmCluster) -> Iterator[str]:
    """A job holding one GPU of gt-a, as a user starts one; its id."""
    argv = ["srun", "--gres=gpu:1", "-w", "gt-a", "-p", "gpu", "-t", "30", "-J", JOB_NAME, "sleep", "600"]
    proc = subprocess.Popen(argv, env=slurm.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        running = wait_until(lambda: squeue_running(slurm), "the job to run", timeout=30)
        yield running
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def drained(slurm: SlurmCluster) -> str:
    done = slurm.scontrol("update", "NodeName=gt-c", "State=DRAIN", f"Reason={DRAIN_REASON}")
    assert done.returncode == 0, done.stderr
    return "gt-c"


def squeue_running(slurm: SlurmCluster) -> str | None:
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], env=slurm.env(), capture_output=True, text=True)
    return out.stdout.strip() or None


def write_config(tmp_path: Path, slurm: SlurmCluster, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'interval = 0.2\n[slurm]\nconf = "{slurm.conf_path}"\nrefresh_s = 1\n{extra}\n'
        '[[hosts]]\nname = "node-a"\ntransport = "local"\nsim = "healthy"\ngpus = 2\nslurm_node = "gt-a"\n'
        '[[hosts]]\nname = "gt-c"\ntransport = "local"\nsim = "healthy"\ngpus = 2\n'
    )
    return path


def snapshot(config: Path) -> dict[str, Any]:
    r = gputui(config, "snapshot", "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def host_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    (host,) = [h for h in data["hosts"] if h["name"] == name]
    return host  # type: ignore[no-any-return]


# -- the command line ------------------------------------------------------------


def test_snapshot_json_names_the_job_on_the_gpu_slurm_gave_it(slurm: SlurmCluster, job: str, tmp_path: Path) -> None:
    data = snapshot(write_config(tmp_path, slurm))
    gpus = {g["index"]: g["allocation"] for g in host_of(data, "node-a")["gpus"]}
    assert gpus[0]["slurm_job"] == {
        "id": job, "name": JOB_NAME, "user": "root", "partition": "gpu", "state": "RUNNING",
        "elapsed_s": gpus[0]["slurm_job"]["elapsed_s"], "time_limit_s": 1800.0,
    }  # fmt: skip
    assert 0 <= gpus[0]["slurm_job"]["elapsed_s"] < 600
    assert gpus[1]["slurm_job"] is None  # GRES IDX 0 only: the other GPU is free as far as Slurm knows
    node = host_of(data, "node-a")["slurm"]["node"]
    assert node["name"] == "gt-a" and node["state"] == "mixed"
    assert not Path("/tmp/gt-slurm-pwned").exists()
    report = gputui(write_config(tmp_path, slurm), "snapshot", "--format", "markdown")
    assert f"| busy, job {job} {JOB_NAME} (root) |" in report.stdout


def test_a_node_drained_outside_gputui_shows_drained_with_who_and_why(slurm: SlurmCluster, drained: str, tmp_path: Path) -> None:
    data = snapshot(write_config(tmp_path, slurm))
    node = host_of(data, drained)["slurm"]["node"]
    assert re.fullmatch(DRAINED_WORD, node["state"]) and "DRAIN" in node["flags"]
    assert node["reason"] == DRAIN_REASON and node["reason_by"] == "root" and node["reason_at"] > T0
    table = gputui(write_config(tmp_path, slurm), "snapshot", "--format", "table")
    assert re.search(rf"  slurm {DRAINED_WORD}: {re.escape(DRAIN_REASON)} \(root, ", table.stdout)
    report = gputui(write_config(tmp_path, slurm), "snapshot", "--format", "markdown")
    assert re.search(rf"Slurm {DRAINED_WORD}: {re.escape(DRAIN_REASON)} \(root, ", report.stdout)  # the incident report too


def test_check_json_carries_the_job_and_the_node_as_the_snapshot_does(
    slurm: SlurmCluster, job: str, drained: str, tmp_path: Path
) -> None:
    r = gputui(write_config(tmp_path, slurm), "check", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr  # healthy hosts: a drained node is Slurm's business, not an alert
    fleet = {h["name"]: h for h in json.loads(r.stdout)["fleet"]}
    assert fleet["node-a"]["gpus"][0]["allocation"]["slurm_job"]["id"] == job
    assert fleet["node-a"]["state"] == "live"  # judged as of the look, not after the hosts were closed
    assert fleet[drained]["slurm"]["node"]["reason"] == DRAIN_REASON


def test_a_controller_that_cannot_be_read_is_said_and_the_hosts_still_shown(slurm: SlurmCluster, tmp_path: Path) -> None:
    data = snapshot(write_config(tmp_path, slurm, f'bin_dir = "{tmp_path}"'))  # no squeue there
    host = host_of(data, "node-a")
    assert host["slurm"]["error"].startswith(f"{tmp_path}/squeue is not installed")
    assert host["error"] is None and len(host["gpus"]) == 2  # the hosts are read as ever


def test_one_reading_is_three_commands_for_the_whole_cluster(slurm: SlurmCluster, job: str) -> None:
    hosts = {f"host-{i}": "gt-a" if i == 0 else f"gt-{i}" for i in range(40)}
    reader = SlurmReader(Slurm(conf=str(slurm.conf_path)), hosts)
    view = asyncio.run(reader.read())
    assert reader.reads == 3  # squeue, sinfo, scontrol show reservation: not one per host
    assert view.error is None and view.job_on("host-0", 0) is not None and view.job_on("host-0", 1) is None


# -- the dashboard ---------------------------------------------------------------


async def test_the_dashboard_shows_jobs_on_gpus_and_node_states(
    slurm: SlurmCluster, job: str, drained: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, slurm)
    app = configured_app(config, cfg.load(config))
    app.triage_first = False
    async with app.run_test(size=SIZE) as pilot:
        read = lambda: app.store.slurm is not None and app.store.slurm.read_at is not None  # noqa: E731
        await wait_for(pilot, read, "Slurm's first reading")
        drained_line = re.compile(rf"slurm {DRAINED_WORD}: {re.escape(DRAIN_REASON)}")
        await wait_for(pilot, lambda: drained_line.search(screen_text(app)) is not None, "the drained node in the overview")
        assert "slurm mixed" in screen_text(app)  # node-a's row
        screen = await open_allocation(pilot, app, "node-a")
        assert isinstance(screen, HostScreen)
        label = f"job {job} {JOB_NAME} (root)"
        await wait_for(pilot, lambda: label in screen_text(app), "the job in the allocation tab")
        table = screen.query_one(AllocationPanel).query_one("#alloc", DataTable)
        assert str(table.get_row("0")[-1]) == label  # the GPU Slurm gave the job
        assert str(table.get_row("1")[-1]) == ""
        assert "Slurm mixed" in screen_text(app)  # the title line
        await pilot.press("4")  # processes
        await wait_for(pilot, lambda: screen.query_one(ProcessesPanel).last_view is not None, "the processes tab")
        await wait_for(pilot, lambda: f"GPU 0: {label}, partition gpu, " in screen_text(app), "the job in the processes tab")


def test_an_idle_gpu_held_by_a_job_is_named_with_its_job(slurm: SlurmCluster, job: str) -> None:
    """The idle-holding alert names the Slurm job, from a real reading of the cluster."""
    fleet = Fleet(interval=10.0, idle_holding_minutes=15)
    fleet.store.set_slurm(asyncio.run(SlurmReader(Slurm(conf=str(slurm.conf_path)), {HOST: "gt-a"}).read()))
    engine = fleet.engine(hold_s=0)
    idle = gpu(util_pct=0, mem_used_mib=31232, processes=[{"pid": 5151, "user": "root", "gpu_mem_mib": 30720}])
    for _ in range(90):
        fleet.sample(idle, step=10.0)
    (alert,) = [a for a in engine.evaluate(fleet.store) if a.rule == "idle-holding"]
    assert alert.severity is Severity.WARNING
    assert alert.title.endswith(f": job {job} {JOB_NAME} (root)")
    assert alert.evidence["Slurm job"] == f"job {job} {JOB_NAME} (root)"
    # Triage's affected line for that alert names the same job, with its partition and limit.
    (given,) = slurm_jobs_given(fleet.store.slurm, HOST, alert.gpu)
    assert given.startswith(f"job {job} {JOB_NAME} (root), partition gpu, ") and given.endswith(" of 30m on GPU 0")
    assert slurm_jobs_given(fleet.store.slurm, HOST, 1) == []


def test_a_node_reserved_through_gputui_shows_its_reservation_beside_it(slurm: SlurmCluster, job: str, tmp_path: Path) -> None:
    """reserve-node through the slurmctld backend, with [slurm] conf as its only way to the
    controller (no SLURM_CONF in the environment): the reservation is read back beside the node."""
    actions = f'[actions]\nenabled = true\naudit_log = "{tmp_path}/audit.jsonl"\nstate_dir = "{tmp_path}/state"\n'
    config = write_config(tmp_path, slurm)
    text = config.read_text().replace('slurm_node = "gt-a"\n', 'slurm_node = "gt-a"\nbackend = "slurmctld"\n')
    config.write_text(text + actions)
    done = gputui(config, "reserve-node", "node-a", "--for", "nobody", "--until", "1h", "--reason", "burn-in", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        host = host_of(snapshot(config), "node-a")
        (held,) = host["slurm"]["reservations"]
        assert (held["name"], held["users"], held["state"]) == ("gputui-gt-a", "nobody", "ACTIVE")
        assert host["slurm"]["node"]["state"] in ("mixed", "reserved"), host["slurm"]["node"]
        table = gputui(config, "snapshot", "--format", "table").stdout
        assert "  slurm reservation gputui-gt-a for nobody until " in table
    finally:
        released = gputui(config, "release-node", "node-a", "--reason", "burn-in done", "--yes")
        assert released.returncode == 0, released.stdout + released.stderr
    assert host_of(snapshot(config), "node-a")["slurm"]["reservations"] == []


async def test_a_node_is_reserved_in_slurm_from_the_host_screen(slurm: SlurmCluster, job: str, tmp_path: Path) -> None:
    """V on a slurmctld host: the dialog asks whom for and until when, previews the scontrol
    command, applies it; the reservation shows in the host's title once Slurm is read again."""
    actions = f'[actions]\nenabled = true\naudit_log = "{tmp_path}/audit.jsonl"\nstate_dir = "{tmp_path}/state"\n'
    text = write_config(tmp_path, slurm).read_text()
    config = tmp_path / "config.toml"
    config.write_text(text.replace('slurm_node = "gt-a"\n', 'slurm_node = "gt-a"\nbackend = "slurmctld"\n') + actions)
    app = configured_app(config, cfg.load(config))
    app.triage_first = False
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_allocation(pilot, app, "node-a")
            dialog = await start(pilot, "V", "burn-in")
            holder = dialog.query_one("#holder", Input)
            holder.value = "nobody"
            dialog.query_one("#until", Input).value = "1h"
            dialog.query_one("#reason", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: dialog.phase != "asking", "the preview", 30)
            assert "scontrol create reservation ReservationName=gputui-gt-a" in preview(dialog), status(dialog) + preview(dialog)
            await pilot.click("#apply")  # a reservation needs a yes, not the host's name typed
            await wait_for(pilot, lambda: dialog.phase == "done", "the apply", 30)
            assert status(dialog).startswith("applied:"), status(dialog) + preview(dialog)
            await pilot.press("escape")
            shown = lambda: "reservation gputui-gt-a for nobody" in screen_text(app)  # noqa: E731
            await wait_for(pilot, shown, "the reservation in the title", 30)
            assert app.screen is screen
    finally:
        released = gputui(config, "release-node", "node-a", "--reason", "burn-in done", "--yes")
        assert released.returncode == 0, released.stdout + released.stderr


async def test_the_slurm_reservation_keys_show_only_on_slurmctld_hosts(slurm: SlurmCluster, tmp_path: Path) -> None:
    config = write_config(tmp_path, slurm)
    app = configured_app(config, cfg.load(config))
    app.triage_first = False
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_allocation(pilot, app, "node-a")
        assert screen.check_action("act", ("drain-node",)) is True
        assert screen.check_action("act", ("reserve-node",)) is False  # backend ledger: Slurm holds no reservation for it
        assert "Reserve node" not in screen_text(app)
