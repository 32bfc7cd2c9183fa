"""Parts shared between hosts (gputui/frame_sharing.py): what many hosts send alike is
kept once, and no host's numbers ever show through another's."""

from __future__ import annotations

import json
from typing import Any

from gputui.frame_decoder import FrameDecoder
from gputui.frames import Sample
from gputui.protocol import PROTOCOL_VERSION

ZERO_ECC = {"volatile_corrected": 0, "volatile_uncorrected": 0, "aggregate_corrected": 0, "aggregate_uncorrected": 0}


def line(frame: dict[str, Any]) -> str:
    return json.dumps({"v": PROTOCOL_VERSION, "t": 1000.0, **frame})


def hello(host: str) -> str:
    return line({"type": "hello", "agent_version": "test", "host": host, "changes": 1, "gpus": [{"index": 0}, {"index": 1}]})


def keyframe(util: int) -> str:
    rows = {"correctable": 0, "uncorrectable": 0}
    gpus = [{"index": i, "util_pct": util, "ecc": ZERO_ECC, "remapped_rows": rows} for i in (0, 1)]
    return line({"type": "sample", "seq": 1, "key": True, "gpus": gpus})


def connected(host: str, util: int) -> tuple[FrameDecoder, Sample]:
    decoder = FrameDecoder()
    decoder.frame(hello(host))
    sample = decoder.frame(keyframe(util))
    assert isinstance(sample, Sample)
    return decoder, sample


def test_a_counter_that_rises_on_one_host_shows_there_alone() -> None:
    decoder_a, a = connected("a", 10)
    _, b = connected("b", 90)
    # Equal counters are one object, whichever host sent them: memory kept once.
    assert a.gpus[0].ecc is b.gpus[0].ecc is b.gpus[1].ecc
    assert a.gpus[0].remapped_rows is b.gpus[1].remapped_rows
    assert (a.gpus[0].util_pct, b.gpus[0].util_pct) == (10, 90)

    rising = {**ZERO_ECC, "volatile_corrected": 7, "aggregate_corrected": 7}
    changed = decoder_a.frame(line({"type": "delta", "seq": 2, "gpus": [{"index": 1, "ecc": rising}]}))
    assert isinstance(changed, Sample)
    ecc = changed.gpus[1].ecc
    assert ecc is not None and (ecc.volatile_corrected, ecc.aggregate_corrected) == (7, 7)
    assert changed.gpus[0].ecc == a.gpus[0].ecc  # host a's other GPU is as it was
    for sample in (a, b):  # what was decoded before, on either host, is untouched
        for gpu in sample.gpus:
            assert gpu.ecc is not None and gpu.ecc.volatile_corrected == 0

    # A second host whose counter reaches the same values shares them; a third at zero does not.
    decoder_c, _ = connected("c", 50)
    c = decoder_c.frame(line({"type": "delta", "seq": 2, "gpus": [{"index": 1, "ecc": rising}]}))
    assert isinstance(c, Sample) and c.gpus[1].ecc is ecc
    _, d = connected("d", 50)
    assert d.gpus[1].ecc is not None and d.gpus[1].ecc.volatile_corrected == 0


def test_copying_one_hosts_sample_leaves_what_the_others_were_sent() -> None:
    """A recorder copies a sample with its events emptied (``model_copy``): the field names
    shared between hosts must not gain the copy's."""
    _, a = connected("a", 10)
    _, b = connected("b", 20)
    assert a.model_fields_set is b.model_fields_set
    sent = set(b.model_fields_set)
    assert "events" not in sent

    copy = a.model_copy(update={"events": []})
    assert "events" in copy.model_fields_set
    assert b.model_fields_set == sent == a.model_fields_set
    assert b.model_dump(exclude_unset=True).keys() == sent
