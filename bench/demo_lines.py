"""The demo fleet's lines, made in-process, and a store connected to them: what the benches
that time one part of the dashboard with nothing else running (``frame_read``, ``health_pass``)
feed it.

Each host is the agent's sampler on simulated GPUs whose clock moves a second per sample (as
the demo's feeds live it, without waiting), sent as changes with a keyframe every ten samples
at the host's own phase. The demo's feeds send one every 30 (``KEYFRAME_EVERY`` in
gputui/protocol.py), so a second here holds three times their share of keyframes (132 µs to
read one, 27 a delta, at 1,024 hosts): the figures these benches gave since they were written
were taken so, and stay comparable with each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from gputui.agent.changes import ChangeEncoder
from gputui.fleet.store import FleetStore
from gputui.frame_decoder import FrameDecoder
from gputui.sources.demo_feed import host_names, make_sampler

KEYFRAME_EVERY = 10  # a third of the demo's hosts' interval (the module says why it stays)


class DemoLines:
    """N demo hosts' lines: their hellos, then one line each per simulated second."""

    def __init__(self, hosts: int) -> None:
        self.names = host_names(hosts)
        self.gpu_clock = 0.0
        self.samplers = [make_sampler("fleet", 0, 8, i, name, clock=self._clock) for i, name in enumerate(self.names)]
        self.encoders = [ChangeEncoder(KEYFRAME_EVERY, phase=i) for i in range(hosts)]

    def _clock(self) -> float:
        return self.gpu_clock

    def hellos(self) -> list[bytes]:
        return [line(e.hello(s.hello(1.0))) for s, e in zip(self.samplers, self.encoders, strict=True)]

    def second(self) -> list[bytes]:
        """Every host's line of the next simulated second, in the order of ``names``."""
        self.gpu_clock += 1.0
        return [line(e.encode(s.sample())) for s, e in zip(self.samplers, self.encoders, strict=True)]


def line(frame: object) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode()


def connected(
    names: list[str], hellos: list[bytes], store: FleetStore, make_decoder: Callable[[], FrameDecoder] = FrameDecoder
) -> list[FrameDecoder]:
    """Each host added to ``store`` with its hello applied; its decoder (made by ``make_decoder``: another
    version's, bench/paired.py), in the order of ``names``."""
    decoders = [make_decoder() for _ in names]
    for name, decoder, hello in zip(names, decoders, hellos, strict=True):
        store.add_host(name)
        store.apply(name, decoder.frame(hello))
    return decoders


def apply_second(store: FleetStore, names: list[str], decoders: list[FrameDecoder], lines: list[bytes]) -> None:
    """One second's lines read as the dashboard reads them: decoded per host, then stored with the
    columns its decoder made (gputui/sources/base.py, ``AgentLines``), where the version has them
    (bench/paired.py's base may be older)."""
    for name, decoder, frame_line in zip(names, decoders, lines, strict=True):
        frame = decoder.frame_later(frame_line) if hasattr(decoder, "frame_later") else decoder.frame(frame_line)
        columns = getattr(decoder, "columns", None)
        if columns is None:
            store.apply(name, frame)
        else:
            store.apply(name, frame, columns)
