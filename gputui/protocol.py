"""What the agent and the dashboard agree on, in one place both can import.

The frame schema is read by :mod:`gputui.frames` (pydantic, dashboard side)
and written by the agent (standard library only, shipped to GPU hosts in a
zip), so the numbers and rules the two ends must share cannot live in either:
a frame's protocol version, the longest line, the action request's version
and the limits a host and the console hold an action's words to. This module
is stdlib-only and rides in the agent bundle.
"""

import re
from typing import Final, List, Optional

# The frame protocol (hello, sample, event, result, error): a dashboard refuses another version plainly.
PROTOCOL_VERSION = 1
# Samples as changes (``gputui agent --changes``), announced in the hello as ``"changes": CHANGES_VERSION``:
# a ``sample`` with ``"key": true`` holds everything; a ``delta`` after it holds, for each GPU
# that moved, its ``index`` and the fields that changed (``null``: now unknown), with
# ``processes`` whole when the list's pids changed, else ``process_changes``: each changed
# process's ``pid`` and changed fields. Its ``seq`` follows the previous sample's; a keyframe
# comes first and every KEYFRAME_EVERY samples, so a reader that joined late or lost a line
# is whole again at the next one. A dashboard that does not ask never gets one.
CHANGES_VERSION = 1
KEYFRAME_EVERY = 30
# The longest line the dashboard reads from an agent, and the agent writes.
MAX_FRAME_BYTES = 1 << 20
# The action request protocol (``gputui agent --act``): its fields are gputui.actions.model.HostRequest.
ACTION_PROTOCOL: Final = 1
# The actions an agent takes (``gputui agent --act``).
ACTIONS = ("reserve", "release", "drain", "undrain", "kill", "drain-node", "resume-node")
GPU_ACTIONS = ("reserve", "release", "drain", "undrain")
# Whole-node actions only a control-plane backend carries out: a Slurm
# reservation is made at the controller (backend slurmctld), so an agent is
# never sent one and refuses one as an unknown action.
CONTROL_PLANE_ACTIONS = ("reserve-node", "release-node")
# Every action the dashboard offers: the agent's, then the control plane's.
ALL_ACTIONS = ACTIONS + CONTROL_PLANE_ACTIONS
# The actions whose target is a whole host (just its name).
NODE_ACTIONS = ("drain-node", "resume-node", *CONTROL_PLANE_ACTIONS)
# The backends a host's agent carries out (gputui/registry.py: the "agent" flavour).
# Control-plane backends (slurmctld) run from the dashboard and are never sent to an agent.
AGENT_BACKENDS = ("ledger", "nvml", "slurm")
# A Slurm NodeName (or hostlist) as the request's ``slurm_node`` may carry it: one
# scontrol argument ``NodeName=...`` that cannot be read as anything else.
SLURM_NODE_NAME = re.compile(r"[A-Za-z0-9._\-\[\],]+")
# The longest a kill waits for SIGTERM: the config's [actions] term_wait_s and
# the CLI's --grace are held to it too, so that what the console accepts the host does.
MAX_TERM_WAIT_S = 300.0
# A reason is a sentence for the record, a ticket an identifier. Without a cap,
# a pasted log as a reason rode in every sample (the host went down on the
# frame limit) and overflowed syslog's argument list; the console holds
# requests to the same caps, so the host and the console refuse alike.
MAX_REASON_CHARS = 200
MAX_TICKET_CHARS = 64


def words_problem(reason: str, ticket: Optional[str]) -> Optional[str]:
    """Why a reason or ticket cannot go on record as given; None when it can."""
    if not reason.strip():
        return "a reason is required: say why, for the record"
    if len(reason) > MAX_REASON_CHARS:
        return "the reason is %d characters; at most %d are kept: say why in a sentence, put the detail in a ticket" % (
            len(reason),
            MAX_REASON_CHARS,
        )
    if ticket is not None and len(ticket) > MAX_TICKET_CHARS:
        return "the ticket is %d characters; at most %d: give its identifier" % (len(ticket), MAX_TICKET_CHARS)
    return None


def scontrol_update_argv(action: str, node: str, reason: str) -> List[str]:
    """The ``scontrol update`` argument list for drain-node or resume-node, run
    without a shell by the agent (backend slurm) and the dashboard (slurmctld).

    The reason goes inside double quotes although no shell is involved:
    scontrol cuts one leading and one trailing ``"`` off the value, so
    wrapping it is what makes a reason that starts or ends with a quote
    reach Slurm unchanged."""
    if action == "drain-node":
        return ["scontrol", "update", "NodeName=%s" % node, "State=DRAIN", 'Reason="%s"' % reason]
    if action == "resume-node":
        return ["scontrol", "update", "NodeName=%s" % node, "State=RESUME"]
    raise ValueError("%s is not a node action" % action)
