"""Frames the store keeps are out of the garbage collector's walk (gputui/frame_untracking.py):
a collection's pause no longer grows with the fleet, and every frame is still freed, and still
read, as before."""

from __future__ import annotations

import functools
import gc
import json
import weakref
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from gputui import frames
from gputui.fleet.store import FleetStore
from gputui.frame_decoder import FrameDecoder
from gputui.frames import Sample
from gputui.health.engine import HealthEngine
from gputui.protocol import PROTOCOL_VERSION
from gputui.ui.state.fleet_figures import FleetFigures

HOSTS = 200
LEDGER = {"version": 3, "gpus": {"2": {"state": "reserved", "for": "alice", "by": "root"}}}  # sent with every frame


def line(frame: dict[str, Any]) -> str:
    return json.dumps({"v": PROTOCOL_VERSION, "t": 1000.0, **frame})


def hello(host: str) -> str:
    return line({"type": "hello", "agent_version": "test", "host": host, "changes": 1, "gpus": [{"index": i} for i in range(8)]})


def keyframe(util: int) -> str:
    gpus = [
        {
            "index": i,
            "util_pct": util,
            "ecc": {"volatile_corrected": 0, "volatile_uncorrected": 0},
            "throttle": [],
            "processes": [{"pid": 100 + i, "user": "alice", "command": "python", "gpu_mem_mib": 1000}],
        }
        for i in range(8)
    ]
    events = [{"xid": 79, "gpu": 5, "t": 999.0}]
    return line({"type": "sample", "seq": 1, "key": True, "gpus": gpus, "ledger": LEDGER, "events": events})


def containers(value: object) -> Iterator[object]:
    """A frame's own objects the collector could walk: its models, their dicts and field-name
    sets, its lists and dicts, and every model in them."""
    if isinstance(value, BaseModel):
        yield from (value, value.__dict__, value.__pydantic_fields_set__)
        for item in value.__dict__.values():
            yield from containers(item)
    elif isinstance(value, list | dict):
        yield value
        for item in value.values() if isinstance(value, dict) else value:
            yield from containers(item)


def connected(store: FleetStore) -> dict[str, FrameDecoder]:
    decoders = {}
    for n in range(HOSTS):
        name = f"h{n}"
        store.add_host(name)
        decoders[name] = decoder = FrameDecoder()
        store.apply(name, decoder.frame(hello(name)))
        store.apply(name, decoder.frame(keyframe(util=n % 100)))
    return decoders


def test_a_fleet_of_frames_adds_nothing_to_a_collections_walk() -> None:
    store = FleetStore()
    decoders = connected(store)
    # Every host sends a change: a GPU's use and a process's memory. Each makes a new sample,
    # a new GPU and a new process list; none of them may be left for the collector to walk.
    for n, (name, decoder) in enumerate(decoders.items()):
        change = {"index": 3, "util_pct": 50 + n % 50, "process_changes": [{"pid": 103, "gpu_mem_mib": 2000 + n}]}
        store.apply(
            name, decoder.frame_later(line({"type": "delta", "seq": 2, "gpus": [change], "ledger": LEDGER})), decoder.columns
        )
    walked = {id(o) for o in gc.get_objects()}  # what a full collection would walk now
    for record in store.hosts.values():  # each change waits to be made (gputui/frame_later.py), out of the walk too
        later = record.later
        assert later is not None
        pending = later.gpus.pending[3]
        waiting = [later, later.values, pending, pending["process_changes"], *pending["process_changes"].values()]
        assert not any(id(part) in walked or gc.is_tracked(part) for part in waiting)
    for n, record in enumerate(store.hosts.values()):
        sample, hello_frame = record.sample, record.hello
        assert isinstance(sample, Sample) and hello_frame is not None
        assert not any(id(part) in walked or gc.is_tracked(part) for part in [*containers(sample), *containers(hello_frame)])
        gpu = sample.gpus[3]  # and what the change says is what a reader sees
        assert (gpu.util_pct, gpu.processes[0].gpu_mem_mib, gpu.processes[0].user) == (50 + n % 50, 2000 + n, "alice")
        assert sample.gpus[2].util_pct == n % 100
        assert sample.ledger is not None and sample.ledger.gpus["2"].holder == "alice"
    for decoder in decoders.values():  # nor what each host's decoder keeps for its next change
        stream = decoder.stream
        assert stream is not None
        kept = [stream, stream.gpus, stream.places, stream.pending, stream.pids]
        assert not any(gc.is_tracked(part) for part in kept)


def test_frame_models_stay_plain_data() -> None:
    """What makes untracking safe: no frame model caches an attribute or has a finaliser, either
    of which could make a cycle through a model the collector no longer sees."""
    models = [
        m for m in vars(frames).values() if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == frames.__name__
    ]
    assert len(models) > 10
    for model in models:
        for klass in model.__mro__:
            if klass.__module__.startswith("gputui"):
                assert "__del__" not in vars(klass), model
                assert not [k for k, v in vars(klass).items() if isinstance(v, functools.cached_property)], model


def test_an_untracked_frame_is_freed_as_soon_as_it_is_replaced() -> None:
    store = FleetStore()
    decoders = connected(store)
    first = store.hosts["h7"].sample
    assert first is not None and not gc.is_tracked(first)
    gone = weakref.ref(first)
    kept_gpu = weakref.ref(first.gpus[0])
    del first
    gc.disable()  # nothing but reference counting may free it
    try:
        store.apply("h7", decoders["h7"].frame(line({"type": "delta", "seq": 2, "gpus": [{"index": 0, "util_pct": 1}]})))
        assert gone() is None and kept_gpu() is None
        store.apply("h7", decoders["h7"].frame(keyframe(util=5)))  # a keyframe replaces the rest
        assert all(g.util_pct == 5 for g in store.hosts["h7"].sample.gpus)  # type: ignore[union-attr]
    finally:
        gc.enable()


def test_the_alerts_of_a_pass_and_the_overviews_host_figures_add_nothing_to_a_walk_and_go_when_replaced() -> None:
    """Made anew when they change (an alert) and with each frame (a host's figures), they lived
    long enough (a second or two at 4,096 hosts) to be walked with the collector's middle
    generation."""
    store = FleetStore()
    connected(store)
    engine = HealthEngine(clock=lambda: 1000.0, hold_s=0)  # the XIDs (at 999) a second ago
    alerts = engine.evaluate(store)
    figures = FleetFigures(store)
    counted = figures.current()
    assert counted.gpus == 8 * HOSTS
    walked = {id(o) for o in gc.get_objects()}
    assert len(alerts) >= HOSTS  # the XID each keyframe carries, on every host
    assert not any(id(a) in walked or gc.is_tracked(a) for a in alerts)
    parts = list(figures.per_host.values())
    assert len(parts) == HOSTS
    assert not any(id(p) in walked or gc.is_tracked(p) for p in parts)
    first = weakref.ref(alerts[0])
    del alerts
    gc.disable()  # nothing but reference counting may free it
    try:
        engine.reset()  # the engine lets it go (an alert that says the same is kept from pass to pass)
        again = engine.evaluate(store)
        assert again and first() is None
    finally:
        gc.enable()


def test_a_decoded_change_is_out_of_the_walk_before_any_store_keeps_it() -> None:
    """The decoder takes what a delta makes out of the walk as it makes it (a recording's player
    and the store alike get it so), and a change to counters or the process list whole is too."""
    decoder = FrameDecoder()
    decoder.frame(hello("h0"))
    decoder.frame(keyframe(util=1))
    changes = [
        {"index": 0, "util_pct": 7, "process_changes": [{"pid": 100, "gpu_mem_mib": 5}]},
        {"index": 1, "ecc": {"volatile_corrected": 3}, "throttle": ["sw_power_cap"], "field_errors": {"fan_pct": "x"}},
        {"index": 2, "processes": [{"pid": 9, "user": "bob"}]},
    ]
    sample = decoder.frame(line({"type": "delta", "seq": 2, "gpus": changes, "ledger": LEDGER}))
    assert isinstance(sample, Sample)
    assert not any(gc.is_tracked(part) for part in containers(sample))
    gpus = sample.gpus
    assert (gpus[0].util_pct, gpus[0].processes[0].gpu_mem_mib, gpus[0].processes[0].user) == (7, 5, "alice")
    assert gpus[1].ecc is not None and gpus[1].ecc.volatile_corrected == 3 and gpus[1].throttle == ["sw_power_cap"]
    assert [(p.pid, p.user) for p in gpus[2].processes] == [(9, "bob")]
