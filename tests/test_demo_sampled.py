"""A demo fleet whose feeds sample only some hosts (``bench/ui_scale.py --sampled-per-feed``).

On a small machine the feeds cannot sample thousands of hosts a second, and a
benchmark whose hosts send less than a frame a second understates the
dashboard's work. With ``sampled_per_feed`` the others are sent copies of
the sampled hosts' frames; each host must still be itself to the dashboard:
its own name in its own hello, and a frame of its own every interval.
"""

from __future__ import annotations

from gputui.frames import Hello, Sample, parse_line
from gputui.sources.demo import DemoFleet, DemoLink
from gputui.sources.demo_feed import scenario_for
from tests.demo_lines import taken


async def first_lines(fleet: DemoFleet) -> dict[str, tuple[bytes, bytes]]:
    """Each host's hello and first sample, as its link hands them on."""
    out = {}
    for name in fleet.names:
        hello, sample = await taken(DemoLink(name, fleet), 2)
        out[name] = (hello, sample)
    return out


async def test_hosts_not_sampled_get_their_own_hello_and_a_sampled_hosts_frames() -> None:
    fleet = DemoFleet(24, 2, "fleet", 0, 1.0)
    fleet.sampled_per_feed = 8
    try:
        got = await first_lines(fleet)
    finally:
        await fleet.close()
    for i, (name, (hello_line, sample_line)) in enumerate(got.items()):
        hello, sample = parse_line(hello_line), parse_line(sample_line)
        assert isinstance(hello, Hello) and isinstance(sample, Sample)
        assert hello.host == name
        assert hello.source == f"sim:{scenario_for('fleet', i)}"  # the scenario its own number gives it
    samples = [sample for _, sample in got.values()]
    assert len(set(samples[:8])) == 8  # the eight sampled hosts, each its own
    assert samples[8:16] == samples[:8] and samples[16:] == samples[:8]  # the rest, copies in turn


async def test_every_host_is_sampled_unless_asked() -> None:
    fleet = DemoFleet(16, 2, "fleet", 0, 1.0)
    try:
        got = await first_lines(fleet)
    finally:
        await fleet.close()
    samples = [sample for _, sample in got.values()]
    assert len(set(samples)) == 16
