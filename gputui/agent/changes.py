"""Samples as changes: a keyframe now and then, and what moved in between.

A sample of eight GPUs is several kilobytes, mostly process lists that
rarely change, and a dashboard of a thousand hosts spent most of its time
parsing them. With ``--changes`` the agent writes a whole sample (``"key":
true``) first and every ``every`` samples, and in between a ``delta`` frame
that carries, per GPU that moved, only the fields that changed; the wire
form is described in gputui/protocol.py. Frames are compared after they are
built, so the sampler and its NVML budget do not change at all.
"""

import json
from typing import Any, Dict, List, Optional

from gputui.protocol import CHANGES_VERSION, KEYFRAME_EVERY

Frame = Dict[str, Any]


class ChangeEncoder:
    """Turns whole sample frames into keyframes and deltas, for one stream."""

    def __init__(self, every: int = KEYFRAME_EVERY, phase: int = 0) -> None:
        """``phase`` brings the second keyframe that many samples sooner: a process that
        writes for many hosts (the demo's feeds) spreads their keyframes over the interval."""
        if every < 1:
            raise ValueError("a keyframe is needed at least every sample")
        self.every = every
        self.phase = phase % every
        self.since_key: Optional[int] = None  # samples written since the last keyframe; None: none yet
        self.last: Dict[int, Dict[str, Any]] = {}  # each GPU as last written, by index (a deep copy)

    def hello(self, hello: Frame) -> Frame:
        """Announce the form in the hello; the next sample is a keyframe."""
        self.since_key = None
        return dict(hello, changes=CHANGES_VERSION, keyframe_every=self.every)

    def resync(self) -> None:
        """The last frame did not reach the reader (too big to send): the next is a keyframe."""
        self.since_key = None

    def encode(self, frame: Frame) -> Frame:
        """The frame to write in place of ``frame`` (a whole sample); other frames pass unchanged."""
        if frame.get("type") != "sample":
            return frame
        # A copy, not references: the sampler may reuse dictionaries from one sample to the next.
        gpus = json.loads(json.dumps(frame["gpus"]))
        key = self.since_key is None or self.since_key + 1 >= self.every or [g["index"] for g in gpus] != list(self.last)
        out = dict(frame, key=True) if key else self._delta(frame, gpus)
        self.last = {g["index"]: g for g in gpus}
        if key:
            self.since_key = self.phase if self.since_key is None else 0
        else:
            self.since_key = (self.since_key or 0) + 1
        return out

    def _delta(self, frame: Frame, gpus: List[Dict[str, Any]]) -> Frame:
        out = {k: v for k, v in frame.items() if k != "gpus"}
        out["type"] = "delta"
        out["gpus"] = [d for d in (gpu_changes(self.last[g["index"]], g) for g in gpus) if len(d) > 1]
        return out


def gpu_changes(before: Dict[str, Any], now: Dict[str, Any]) -> Dict[str, Any]:
    """``index`` and what differs; a field gone is sent as null (unknown now)."""
    out: Dict[str, Any] = {"index": now["index"]}
    for name, value in now.items():
        if name != "processes" and before.get(name) != value:
            out[name] = value
    for name in before:
        if name not in now:
            out[name] = None
    old, new = before.get("processes") or [], now.get("processes") or []
    if [p.get("pid") for p in old] != [p.get("pid") for p in new]:
        out["processes"] = new
    else:
        changed = [process_changes(a, b) for a, b in zip(old, new)]
        changed = [c for c in changed if len(c) > 1]
        if changed:
            out["process_changes"] = changed
    return out


def process_changes(before: Dict[str, Any], now: Dict[str, Any]) -> Dict[str, Any]:
    """``pid`` and what differs in one process's facts."""
    out: Dict[str, Any] = {"pid": now.get("pid")}
    for name, value in now.items():
        if before.get(name) != value:
            out[name] = value
    for name in before:
        if name not in now:
            out[name] = None
    return out
