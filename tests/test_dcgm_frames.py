"""dcgm-exporter's answers made into a host's frames (gputui/sources/dcgm.py), and what the
dashboard counts of them: a GPU that only its XID gauge still names is lost; a GPU held by a
pod or holding memory is in use though no process can be listed."""

from __future__ import annotations

import json

from gputui.config import Thresholds
from gputui.fleet.allocation import in_use
from gputui.fleet.store import FleetStore
from gputui.frames import GpuSample, parse_frame
from gputui.health.engine import HealthEngine
from gputui.sources import dcgm

HOST = "dgx-b07"
T0 = 1_800_000_000.0


def reading(t: float, xid_on_gpu1: int | None) -> dcgm.Reading:
    """GPU 0 reads normally (held by a pod); GPU 1 has fallen off the bus: only its XID gauge is left."""
    labels = {"Hostname": HOST, "gpu": "0", "UUID": "GPU-0", "modelName": "NVIDIA H100 80GB HBM3",
              "namespace": "ml", "pod": "train-7", "container": "main"}  # fmt: skip
    values = [
        {"metric": {"__name__": name, "Hostname": HOST, "gpu": "0"}, "value": [t, value]}
        for name, value in (("DCGM_FI_DEV_GPU_TEMP", "61"), ("DCGM_FI_DEV_FB_FREE", "20000"), (dcgm.XID, "0"))
    ]
    xids = []
    if xid_on_gpu1 is not None:
        values.append({"metric": {"__name__": dcgm.XID, "Hostname": HOST, "gpu": "1"}, "value": [t, str(xid_on_gpu1)]})
        xids.append({"metric": {"Hostname": HOST, "gpu": "1"}, "value": [t, "1"]})
    return dcgm.Reading.of(
        [{"metric": labels, "value": [t, "61000"]}], [{"metric": {"Hostname": HOST}, "value": [t, str(t)]}], xids, values, None
    )


def test_a_gpu_named_only_by_its_xid_gauge_is_lost_and_alerted() -> None:
    frames = dcgm.HostFrames(HOST, 5.0)
    store = FleetStore()
    store.add_host(HOST)
    read = reading(T0, 79)
    for frame in frames.frames(read, read.hosts()[HOST]):
        store.apply(HOST, parse_frame(json.dumps(frame)))
    record = store.hosts[HOST]
    assert record.hello is not None and [g.index for g in record.hello.gpus] == [0, 1]
    assert record.hello.gpus[1].lost and "last XID" in (record.hello.gpus[1].error or "")
    gpu0, gpu1 = record.gpus()
    assert gpu1.lost and not gpu0.lost and gpu0.temp_c == 61
    assert [(e.xid, e.gpu) for e in record.events] == [(79, 1)]
    alerts = HealthEngine(Thresholds(), hold_s=0).evaluate(store)
    assert any(a.gpu == 1 and a.severity.name == "CRITICAL" for a in alerts), alerts


def test_a_gpu_of_a_source_without_processes_is_in_use_when_held_or_holding_memory() -> None:
    held = GpuSample(index=0, holder="ml/train-7/main", mem_used_mib=2)
    holding = GpuSample(index=1, mem_used_mib=60_000)
    idle = GpuSample(index=2, mem_used_mib=3)
    assert [in_use(g, "prometheus") for g in (held, holding, idle)] == [True, True, False]
    # An agent lists processes: no process, not in use, whatever the memory says (as before).
    assert [in_use(g, "nvml") for g in (held, holding, idle)] == [False, False, False]
