"""Render the screens to screenshots/*.svg from a fixed demo seed.

Run after any UI change (``make screenshots``) and look at the results.
The fleet is simulated with a clock that does not move, so the same code
always draws the same numbers. The action screenshots ask scripted hosts
(answers shaped as ``gputui agent --act`` gives them) and write their audit
log to a temporary folder on a fixed wall clock, in UTC.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import gputui.actions.audit
import gputui.sim.events
import gputui.sim.processes
from gputui import config as cfg
from gputui.actions.audit import AuditLog
from gputui.actions.guard import Guard
from gputui.actions.model import ActionRequest, Affected, GpuState, HostAnswer, HostRequest, Operator, Target
from gputui.agent.sampler import Sampler
from gputui.config import Thresholds
from gputui.fleet.pace import Pace
from gputui.fleet.store import FleetStore
from gputui.frames import parse_frame
from gputui.health.engine import HealthEngine
from gputui.health.model import Alert, Severity
from gputui.sim.nvidia_smi import app_rows, gpu_row
from gputui.sim.nvml import SimNvml
from gputui.slurm import parse as slurm_parse
from gputui.slurm.model import SlurmView
from gputui.sources import dcgm
from gputui.sources.demo import host_names, scenario_for
from gputui.transport.smi_fallback import APP_FIELDS, GPU_FIELDS, hello_frame, parse_apps, parse_gpu_line, sample_frame
from gputui.ui.app import GpuTuiApp
from gputui.ui.dialogs.action_screen import ActionDesk, ActionScreen
from gputui.ui.screens.triage_screen import TriageScreen
from gputui.ui.state.alerts import AlertBoard

OUT = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (150, 36)
REDUCED_HOST = 11  # gpu-12 has no python3: read through nvidia-smi
HELD_HOST = 2  # gpu-03: its ledger holds two GPUs
HELD_LEDGER = {
    "version": 12,
    "gpus": {
        "1": {"state": "drained", "by": "alice@console1", "reason": "ECC errors climbing, RMA ticket open"},
        "2": {"state": "reserved", "for": "bob", "by": "alice@console1", "reason": "benchmark before the release"},
    },
}
WALL = 1_790_000_000.0  # the audit log's clock


class Clock:
    """One clock for the simulators, the samplers and the store: it moves
    only when the script says, so the same seed draws the same screens."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Judge:
    """The health engine, fed every sample of a frozen fleet on a wall clock that moves with
    the fleet's: alerts, their "since" and their damping come out the same every run."""

    def __init__(self, clock: Clock) -> None:
        self.wall = lambda: WALL + clock.now
        self.engine = HealthEngine(Thresholds(), clock=self.wall)

    def __call__(self, store: FleetStore) -> list[Alert]:
        return self.engine.evaluate(store)


def judged_app(store: FleetStore, judge: Judge, title: str, theme: str = "gputui-dark", pace: Pace | None = None) -> GpuTuiApp:
    app = GpuTuiApp(store, [], title=title, theme=theme, health=judge, pace=pace, wall_clock=judge.wall)
    app.board = AlertBoard(judge, operator=Operator("alice", "console1"), clock=judge.wall)
    return app


def frozen_fleet(hosts: int = 16, seed: int = 0, samples: int = 960, scenario: str = "fleet") -> tuple[FleetStore, Judge]:
    """``scenario`` "fleet" adds a host read through nvidia-smi, a ledger and a host that is down."""
    clock = Clock()
    store = FleetStore(clock=clock)
    judge = Judge(clock)
    # The simulated kernel log dates its planted XIDs from the wall clock: the frozen one, so "since" is the same every run.
    setattr(gputui.sim.events, "time", SimpleNamespace(time=judge.wall, monotonic=time.monotonic))  # noqa: B010
    # Its processes' start times too, so each shot shows the same "running" ages every run.
    setattr(gputui.sim.processes, "time", SimpleNamespace(time=judge.wall, monotonic=time.monotonic))  # noqa: B010
    samplers = []
    mixed = scenario == "fleet"
    reduced: tuple[str, SimNvml] = ("", SimNvml("healthy", processes="synthetic", clock=clock))
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for(scenario, i), seed=seed * 1009 + i, processes="synthetic", clock=clock, host_no=i)
        sampler = Sampler(
            sim, host=name, source=f"sim:{sim.scenario.name}", describe=sim.describe_process, clock=clock, wall=judge.wall
        )
        store.add_host(name)
        store.mark_connecting(name)
        if mixed and i == REDUCED_HOST:
            reduced = (name, sim)
            continue
        store.apply(name, parse_frame(json.dumps(sampler.hello(1.0))))
        samplers.append((name, sampler))
    for n in range(samples):  # 16 minutes of history: charts, and idle GPUs held long enough to count
        clock.now += 1.0
        for name, sampler in samplers:
            sample = sampler.sample()
            if mixed and name == host_names(hosts)[HELD_HOST]:
                sample["ledger"] = HELD_LEDGER
            store.apply(name, parse_frame(json.dumps(sample)))
        if mixed and (n % 60 == 0 or n == samples - 1):
            feed_as_nvidia_smi(store, *reduced)
        judge(store)
    if mixed:
        store.mark_down(host_names(hosts)[-1], "gpu-16: cannot connect to gpu-16: Connection refused")
    return store, judge


def behind_fleet(hosts: int = 16, lagging_s: int = 6) -> tuple[FleetStore, Judge, Pace]:
    """A dashboard out of CPU: a minute of every host, then ``lagging_s`` seconds in which it
    reads a fifth of the samples its hosts send, with 97 % of a core busy (the pace meter's clock)."""
    clock = Clock()
    store = FleetStore(clock=clock)
    judge = Judge(clock)
    samplers = []
    for i, name in enumerate(host_names(hosts)):
        sim = SimNvml(scenario_for("fleet", i), seed=i, processes="synthetic", clock=clock, host_no=i)
        sampler = Sampler(sim, host=name, describe=sim.describe_process, clock=clock, wall=judge.wall)
        store.add_host(name)
        store.apply(name, parse_frame(json.dumps(sampler.hello(1.0))))
        samplers.append((name, sampler))
    pace = Pace(store, clock=clock, cpu_clock=lambda: 0.97 * clock.now)
    for n in range(60 + lagging_s):
        clock.now += 1.0
        for k, (name, sampler) in enumerate(samplers):
            sample = sampler.sample()  # sampled either way: the host's agent goes on
            if n < 60 or (k + n) % 5 == 0:
                store.apply(name, parse_frame(json.dumps(sample)))
        if n >= 60 - pace.window_s:
            pace.measure()
        judge(store)
    return store, judge, pace


def feed_as_nvidia_smi(store: FleetStore, name: str, sim: SimNvml) -> None:
    """A host without python3: what the nvidia-smi fallback makes of it."""
    rows = [parse_gpu_line(gpu_row(sim, i, list(GPU_FIELDS))) for i in range(len(sim.gpus))]
    apps = parse_apps("\n".join(app_rows(sim, list(APP_FIELDS))))
    store.apply(name, parse_frame(json.dumps(hello_frame(rows, name, 1.0))))
    store.apply(name, parse_frame(json.dumps(sample_frame(rows, 0, apps))))


async def shoot() -> None:
    OUT.mkdir(exist_ok=True)
    store, judge = frozen_fleet()
    app = judged_app(store, judge, "demo: 16 hosts (fleet, seed 0)")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.save_screenshot(str(OUT / "overview.svg"))
        await pilot.press("m", "m")
        await pilot.pause()
        app.save_screenshot(str(OUT / "overview-temperature.svg"))
        await pilot.press("m", "m", "down", "down", "enter")
        for tab, name in (("1", "utilization"), ("2", "thermal"), ("3", "allocation"), ("4", "processes")):
            await pilot.press(tab)
            await pilot.pause()
            app.save_screenshot(str(OUT / f"host-{name}.svg"))
        await pilot.press("g")  # the processes grouped by Slurm job (else container)
        await pilot.pause()
        app.save_screenshot(str(OUT / "host-processes-grouped.svg"))
        await pilot.press("question_mark")
        await pilot.pause()
        app.save_screenshot(str(OUT / "help.svg"))
        await pilot.press("escape", "escape", "c")
        await pilot.pause()
        app.save_screenshot(str(OUT / "connections.svg"))
    console = judged_app(store, judge, "demo: 16 hosts (fleet, seed 0)", theme="gputui-console")
    async with console.run_test(size=SIZE) as pilot:
        await pilot.pause()
        console.save_screenshot(str(OUT / "console-overview.svg"))
        await pilot.press("down", "down", "enter", "2")
        await pilot.pause()
        console.save_screenshot(str(OUT / "console-host-thermal.svg"))
    await shoot_narrow(store, judge)
    await shoot_mig(store, judge)
    # A fixed folder: its path is on the audit screen, and the screenshot must not change run to run.
    tmp = Path(tempfile.gettempdir()) / "gputui-screenshots"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        await shoot_actions(store, judge, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    await shoot_slurm(store, judge)
    await shoot_triage()
    await shoot_prometheus()
    await shoot_welcome()
    await shoot_behind()
    for svg in sorted(OUT.glob("*.svg")):
        print(svg)


class ScriptedHosts:
    """An action backend that answers as a host's ``gputui agent --act`` would (docs/actions.md), with no host."""

    async def apply(self, host: cfg.Host, request: HostRequest, preview: HostAnswer, timeout: float) -> HostAnswer:
        gpus = [int(g) for g in request.gpus]
        done = [f"recorded GPU {i} as {request.action}ed in the ledger (version 13)" for i in gpus]
        return HostAnswer(ok=True, phase="apply", host=host.name, ledger_version=13, done=done)

    async def preview(self, host: cfg.Host, request: HostRequest, timeout: float) -> HostAnswer:
        gpus = [int(g) for g in request.gpus]
        return HostAnswer(
            ok=True,
            phase="preview",
            host=host.name,
            ledger_version=12,
            gpus=[GpuState(index=i, uuid=f"GPU-5d1c0a2b-{i:04d}", state="free") for i in gpus],
            steps=[f"record GPU {i} as drained in the ledger (backend ledger)" for i in gpus],
            affected=[Affected(gpu=0, pid=48213, user="bob", command="python train.py --epochs 90", job="81234")],
            notes=["the ledger backend stops nothing: the job on GPU 0 runs on; the scheduler sees the drain"],
        )


def action_desk(store: FleetStore, audit_path: Path) -> ActionDesk:
    config = cfg.Config.model_validate({"actions": {"enabled": True}, "hosts": [{"name": n} for n in store.hosts]})
    guard = Guard(config, Operator("alice", "console1"), AuditLog(audit_path), backends={"ledger": ScriptedHosts()})
    return ActionDesk(config, guard=guard)


async def earlier_actions(desk: ActionDesk) -> None:
    """A few records for the audit screen: applied, refused, cancelled."""
    guard = await desk.guard()
    host = next(iter(desk.config.hosts)).name
    plan = await guard.prepare(ActionRequest("reserve", [Target(host, ("2",))], "benchmark before the release", holder="bob"))
    await guard.apply(plan)
    plan = await guard.prepare(ActionRequest("drain", [Target(host, ("0", "1", "2", "3", "4", "5", "6", "7", "8"))], "rack move"))
    plan = await guard.prepare(ActionRequest("drain", [Target(host, ("1",))], "ECC errors climbing", ticket="RMA-2211"))
    guard.cancel(plan, "confirmation was ''")


async def shoot_actions(store: FleetStore, judge: Judge, tmp: Path) -> None:
    os.environ["TZ"] = "UTC"
    time.tzset()
    setattr(gputui.actions.audit, "time", SimpleNamespace(time=lambda: WALL))  # noqa: B010 (mypy: the module does not export time)
    app = judged_app(store, judge, "demo: 16 hosts (fleet, seed 0)")
    app.actions = action_desk(store, tmp / "audit.jsonl")
    await earlier_actions(app.actions)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        await pilot.press("3", "D", *("space" if c == " " else c for c in "fan failing, swap it"))
        screen = app.screen
        assert isinstance(screen, ActionScreen)
        await pilot.press("enter")
        while screen.phase == "asking":
            await pilot.pause()
        app.save_screenshot(str(OUT / "action-preview.svg"))
        await pilot.press(*"gpu-03", "enter")
        while screen.phase != "done":
            await pilot.pause()
        await pilot.press("escape", "A")
        await pilot.pause()
        app.save_screenshot(str(OUT / "audit.svg"))


async def shoot_triage() -> None:
    """``gputui demo --scenario incident``, three hosts: the triage, one alert acknowledged."""
    store, judge = frozen_fleet(hosts=3, scenario="incident")
    title = "demo: 3 hosts (incident, seed 0)"
    for theme, name in (("gputui-dark", "triage.svg"), ("gputui-console", "console-triage.svg")):
        app = judged_app(store, judge, title, theme=theme)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, TriageScreen)
            acked = next((a for a in app.board.shown if a.host == "gpu-02" and a.severity < Severity.CRITICAL), None)
            if acked is not None and acked.key not in app.board.acks:
                app.board.acknowledge(acked, "on it, INC-4711")
            screen.update_view()
            await pilot.pause()
            app.save_screenshot(str(OUT / name))


async def shoot_narrow(store: FleetStore, judge: Judge) -> None:
    """The Linux console at 80x24: what an admin at a VT sees, every line cut to fit."""
    console = judged_app(store, judge, "demo: 16 hosts (fleet, seed 0)", theme="gputui-console")
    async with console.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        console.save_screenshot(str(OUT / "console-80x24-overview.svg"))
        await pilot.press("down", "down", "enter", "2")
        await pilot.pause()
        console.save_screenshot(str(OUT / "console-80x24-host-thermal.svg"))
        await pilot.press("escape", "t")
        await pilot.pause()
        console.save_screenshot(str(OUT / "console-80x24-triage.svg"))


async def shoot_mig(store: FleetStore, judge: Judge) -> None:
    """The mixed host's A100 in MIG mode: a row per instance in the allocation tab."""
    app = judged_app(store, judge, "demo: 16 hosts (fleet, seed 0)")
    async with app.run_test(size=SIZE) as pilot:
        app.open_host(host_names(16)[1])
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        app.save_screenshot(str(OUT / "host-allocation-mig.svg"))


def slurm_reading(store: FleetStore) -> SlurmView:
    """What squeue, sinfo and scontrol would answer for the frozen fleet: a job on each
    busy GPU pair of the first hosts (its user the processes' own), a node drained by an
    operator with a reason, one reserved for maintenance; read through the real parsers."""
    started = time.time() - 5400  # the screen says elapsed time from the real clock: 1.5h, run after run
    jobs, nodes = [], []
    names = ("llm-pretrain", "eval-sweep", "tokenize", "rl-ppo")
    for h, name in enumerate(host_names(16)[:8]):
        record = store.hosts[name]
        given: dict[str, tuple[str, list[int]]] = {}  # the job each process's cgroup names: Slurm gave it the GPU
        for g in record.gpus():
            for p in g.processes:
                if p.slurm_job and g.index not in given.setdefault(p.slurm_job, (p.user or "?", []))[1]:
                    given[p.slurm_job][1].append(g.index)
        for n, (job_id, (user, gpus)) in enumerate(given.items()):
            jobs.append({
                "job_id": int(job_id), "name": names[(h + n) % len(names)], "user_name": user,
                "partition": "a100" if h % 2 else "h100", "job_state": "RUNNING", "start_time": started + 600 * n,
                "time_limit": 1440, "gres_detail": [f"gpu:{len(gpus)}(IDX:{','.join(map(str, gpus))})"], "nodes": name,
                "job_resources": {"allocated_nodes": [{"nodename": name}]},
            })  # fmt: skip
        held = given
        state, flags, reason = ("mixed" if held else "idle"), [], ""
        if h == 5:
            state, flags, reason = "idle", ["DRAIN"], "PSU 2 failed, vendor case 88123"
        nodes.append({"name": name, "state": state, "state_flags": flags, "reason": reason,
                      "reason_set_by_user": "ops" if reason else None, "reason_changed_at": int(WALL)})  # fmt: skip
    resv = (
        "ReservationName=gputui-gpu-07 StartTime=2026-12-05T08:00:00 EndTime=2026-12-05T12:00:00 Duration=04:00:00 "
        "Nodes=gpu-07 NodeCnt=1 CoreCnt=64 Features=(null) PartitionName=(null) Flags=MAINT,IGNORE_JOBS,SPEC_NODES "
        "TRES=cpu=64 Users=bob Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE BurstBuffer=(null) Watts=n/a"
    )
    return SlurmView(
        jobs=tuple(slurm_parse.squeue_jobs(json.dumps({"jobs": jobs}))),
        nodes=slurm_parse.sinfo_nodes(json.dumps({"nodes": nodes})),
        reservations=tuple(slurm_parse.reservations(resv)),
        read_at=WALL,
    )


async def shoot_slurm(store: FleetStore, judge: Judge) -> None:
    """A Slurm site ([slurm]): node states in the overview, jobs on a host's GPUs."""
    store.slurm = slurm_reading(store)
    try:
        app = judged_app(store, judge, "demo: 16 hosts (fleet, seed 0)")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.save_screenshot(str(OUT / "overview-slurm.svg"))
            app.open_host(host_names(16)[0])
            await pilot.pause()
            await pilot.press("3")
            await pilot.pause()
            app.save_screenshot(str(OUT / "host-allocation-slurm.svg"))
            await pilot.press("4")
            await pilot.pause()
            app.save_screenshot(str(OUT / "host-processes-slurm.svg"))
    finally:
        store.slurm = None


def prometheus_reading(t: float, hosts: list[str]) -> dcgm.Reading:
    """What four queries to a Prometheus holding dcgm-exporter's default counters answer:
    8 H100s a node, some held by Kubernetes pods, no ECC or retired pages exported."""
    inventory, values, scraped = [], [], []
    for h, host in enumerate(hosts):
        scraped.append({"metric": {"Hostname": host}, "value": [t, str(t)]})
        for gpu in range(8):
            labels = {
                "gpu": str(gpu), "UUID": f"GPU-{h:02x}{gpu:02x}c3e1-7a2b-4c8d-9e0f-1a2b3c4d5e6f", "device": f"nvidia{gpu}",
                "pci_bus_id": f"00000000:{0x18 + 16 * gpu:02X}:00.0", "modelName": "NVIDIA H100 80GB HBM3",
                "Hostname": host, "DCGM_FI_DRIVER_VERSION": "550.54.15",
            }  # fmt: skip
            if gpu < 6 - 2 * h:
                labels.update(namespace="ml-train", pod=f"llm-ft-{h}{gpu // 2}-7f9c", container="trainer")
            busy = gpu < 6 - 2 * h
            used = 61_000 + 1_000 * gpu if busy else 3
            inventory.append({"metric": labels, "value": [t, str(used)]})
            family = {
                "DCGM_FI_DEV_GPU_UTIL": (88 + gpu) if busy else 0, "DCGM_FI_DEV_MEM_COPY_UTIL": 35 if busy else 0,
                "DCGM_FI_DEV_FB_FREE": 81_559 - used, "DCGM_FI_DEV_GPU_TEMP": (64 + 2 * gpu) if busy else 33,
                "DCGM_FI_DEV_MEMORY_TEMP": (70 + gpu) if busy else 35, "DCGM_FI_DEV_POWER_USAGE": 590.5 if busy else 71.2,
                "DCGM_FI_DEV_SM_CLOCK": 1980 if busy else 345, "DCGM_FI_DEV_MEM_CLOCK": 2619, "DCGM_FI_DEV_XID_ERRORS": 0,
                "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": 0, "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 0,
                "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": 0, "DCGM_FI_DEV_ROW_REMAP_FAILURE": 0,
            }  # fmt: skip
            for name, v in family.items():
                values.append({"metric": {"__name__": name, "Hostname": host, "gpu": str(gpu)}, "value": [t, str(v)]})
    return dcgm.Reading.of(inventory, scraped, [], values, None)


async def shoot_prometheus() -> None:
    """Hosts read through Prometheus (dcgm-exporter): the connections view, and a node's allocation by pod."""
    clock = Clock()
    store = FleetStore(clock=clock)
    judge = Judge(clock)
    hosts = ["dgx-a01", "dgx-a02", "dgx-a03"]
    frames = {name: dcgm.HostFrames(name, 5.0) for name in hosts}
    for _ in range(60):
        clock.now += 5.0
        reading = prometheus_reading(WALL + clock.now, hosts)
        for name, keys in reading.hosts().items():
            store.add_host(name)
            for frame in frames[name].frames(reading, keys):
                store.apply(name, parse_frame(json.dumps(frame)))
        judge(store)
    app = judged_app(store, judge, "gputui: http://prometheus.example:9090")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await pilot.pause()
        app.save_screenshot(str(OUT / "connections-prometheus.svg"))
        await pilot.press("escape")
        app.open_host("dgx-a01")
        await pilot.pause()
        await pilot.press("3")
        await pilot.pause()
        app.save_screenshot(str(OUT / "host-allocation-prometheus.svg"))


async def shoot_behind() -> None:
    """The overview of a dashboard that cannot read its hosts' frames in time: the stale hosts may only be waiting on it."""
    store, judge, pace = behind_fleet()
    app = judged_app(store, judge, "demo: 16 hosts (fleet, seed 0)", pace=pace)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.save_screenshot(str(OUT / "overview-behind.svg"))


async def shoot_welcome() -> None:
    """``gputui`` with no config yet: what an operator sees first after installing."""
    app = GpuTuiApp(welcome=(Path("~/.config/gputui/config.toml"), None))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.save_screenshot(str(OUT / "welcome.svg"))


if __name__ == "__main__":
    asyncio.run(shoot())
