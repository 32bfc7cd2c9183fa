"""The agent's stop flag: SIGTERM ends the sampling loop, whatever the loop
was doing when it came."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from gputui.agent.stop_signal import StopSignal

# The agent's loop, reduced: sleep a little, again and again, and count the
# signals that woke it. With threading.Event set from the handler, a signal
# that lands while the loop holds the event's lock hangs the process for good
# (with more signals behind it, the nested handlers overflow the stack).
BUSY_LOOP = textwrap.dedent(
    """
    import signal, sys
    from gputui.agent.stop_signal import StopSignal
    stop = StopSignal((signal.SIGUSR1,))
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    heard = 0
    while heard < 3000:
        stop.wait(0.00001)
        if stop.is_set():
            heard += 1
            stop.flag = False
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the test's last signals are in flight
    sys.stdout.write("heard %d\\n" % heard)
    """
)


def test_a_signal_wakes_a_long_wait_at_once() -> None:
    stop = StopSignal((signal.SIGUSR1,))
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    t0 = time.monotonic()
    timer.start()
    try:
        assert stop.wait(30.0)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
    assert time.monotonic() - t0 < 10.0  # not the 30 s it was asked to sleep
    assert stop.is_set()


def test_a_wait_without_a_signal_sleeps_its_time_and_says_so() -> None:
    stop = StopSignal(())
    t0 = time.monotonic()
    assert stop.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.05
    stop.set()
    assert stop.wait(30.0) is True


def test_a_loop_that_sleeps_in_slivers_survives_a_stream_of_signals() -> None:
    child = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdout=subprocess.PIPE, text=True, stderr=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 60.0
    while child.poll() is None and time.monotonic() < deadline:
        os.kill(child.pid, signal.SIGUSR1)
        time.sleep(0.0005)  # a pace for the signals, not a wait for a result
    alive = child.poll() is None
    if alive:
        child.kill()
    out, err = child.communicate()
    assert not alive, "the loop hung on a signal"
    assert out == "heard 3000\n", err
