"""A harmless stand-in for a GPU job: it waits for its stdin to close.

The simulator starts one per simulated job so that the agent's ``/proc``
reading (user, command, RSS, start time) runs on a real process. The pipe on
stdin is the lifeline: when the simulator exits for any reason, even
SIGKILL, the pipe closes and the stand-in ends with it.
"""

import sys


def main() -> None:
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
