"""A harmless stand-in for a GPU job: it waits for its stdin to close.

The simulator starts one per simulated job so that the agent's ``/proc``
reading (user, command, RSS, start time) and the kill action run on a real
process. The pipe on stdin is the lifeline: when the simulator exits for any
reason, even SIGKILL, the pipe closes and the stand-in ends with it. With
``GPUTUI_STANDIN_IGNORE_TERM=1`` in its environment it ignores SIGTERM (as a
job hung in its cleanup would), so that only SIGKILL or the lifeline end it.
"""

import os
import signal
import sys


def main() -> None:
    if os.environ.get("GPUTUI_STANDIN_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Say "running" once: the simulator waits for it, so that nobody reads
    # this process in /proc before it is what it stands for.
    sys.stdout.write("r")
    sys.stdout.close()
    try:
        sys.stdin.buffer.read()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
