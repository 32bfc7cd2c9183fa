"""A stop flag that SIGTERM and SIGHUP may set.

``threading.Event.set`` is not safe in a signal handler: the handler runs in
the main thread between two bytecodes, and when that thread is itself inside
``Event.wait`` holding the event's lock, ``set`` waits on that lock forever.
The agent then never exits and its reader waits on a process that ignores
SIGTERM. So the handler only sets a plain flag, and the C-level handler wakes
the sleeping loop through a self-pipe (``signal.set_wakeup_fd``).
"""

from __future__ import annotations

import os
import select
import signal
from typing import Any, Optional, Sequence


class StopSignal:
    """Set by the listed signals (or :meth:`set`); :meth:`wait` sleeps until
    the timeout or the flag, whichever comes first."""

    def __init__(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> None:
        self.flag = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous_fd: Optional[int] = None
        if signals:
            self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
            for sig in signals:
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.flag = True

    def set(self) -> None:
        self.flag = True
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:  # already awake
            pass

    def is_set(self) -> bool:
        return self.flag

    def wait(self, timeout: float) -> bool:
        """True once set; never longer than ``timeout`` seconds."""
        if not self.flag and timeout > 0:
            readable, _, _ = select.select([self._read], [], [], timeout)
            if readable:
                try:
                    while os.read(self._read, 512):
                        pass
                except BlockingIOError:
                    pass
        return self.flag
