"""A simulated host with no ``[actions] state_dir`` in the config behaves as
a real one: its streaming agent shows what the ``--act`` agents did, and
they see (and may kill) the processes it lists, even with a second agent
of the same host running beside it."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gputui.agent.ledger import choose_state_dir
from gputui.frames import Sample, parse_frame
from gputui.transport.local import agent_argv
from tests.action_cli import audit, gputui
from tests.waiting import wait_until_gone


class Host:
    """A sim host named uniquely for the test: its state lives where an
    ``--act`` agent without ``--state-dir`` puts it, and is removed after."""

    def __init__(self, tmp_path: Path) -> None:
        self.name = f"sim-{uuid.uuid4().hex[:8]}"
        self.state_dir = Path(choose_state_dir(None)[0])
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            f'[actions]\nenabled = true\naudit_log = "{tmp_path}/audit.jsonl"\n'
            f'[[hosts]]\nname = "{self.name}"\ntransport = "local"\nsim = "healthy"\ngpus = 2\n'
        )
        # As the dashboard starts it for this config: no --state-dir.
        argv = agent_argv(0.1, sim="healthy", gpus=2, host_name=self.name)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def until(self, predicate: Callable[[Sample], bool], what: str, timeout: float = 30.0) -> Sample:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, "the streaming agent stopped"
            frame = parse_frame(line)
            if isinstance(frame, Sample) and predicate(frame):
                return frame
        raise AssertionError(f"no sample within {timeout}s with {what}")

    def busy(self) -> tuple[int, int]:
        sample = self.until(lambda s: any(g.processes for g in s.gpus), "a GPU process")
        gpu = next(g for g in sample.gpus if g.processes)
        return gpu.index, gpu.processes[0].pid

    def close(self) -> None:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdout.close()
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(timeout=20)
        for pattern in (f"ledger-{self.name}.*", f"sim-driver-{self.name}.*"):
            for path in self.state_dir.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    yield h
    h.close()


def test_a_drain_shows_in_the_samples_of_a_host_without_a_state_dir(host: Host) -> None:
    gpu, pid = host.busy()
    r = gputui(host.config, "drain", f"{host.name}:{gpu}", "--reason", "fan noise", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"busy: 1 process (pid {pid})" in r.stdout, r.stdout  # not "no running process"
    r = gputui(host.config, "drain", f"{host.name}:{gpu}", "--reason", "fan noise", "--yes")
    assert r.returncode == 0, r.stderr
    sample = host.until(lambda s: s.ledger is not None and str(gpu) in s.ledger.gpus, "the drain in the ledger")
    assert sample.ledger is not None
    held = sample.ledger.gpus[str(gpu)]
    assert (held.state, held.reason) == ("drained", "fan noise")
    r = gputui(host.config, "undrain", f"{host.name}:{gpu}", "--reason", "fixed", "--yes")
    assert r.returncode == 0, r.stderr
    host.until(lambda s: s.ledger is None or not s.ledger.gpus, "the undrain")


def test_a_listed_process_can_be_killed_while_a_snapshot_runs_beside(host: Host) -> None:
    _, pid = host.busy()
    # A second agent of the same host starts and ends its own stand-ins...
    r = gputui(host.config, "snapshot", "--format", "json")
    assert r.returncode == 0, r.stderr
    # ...and the first agent's processes are still the host's.
    r = gputui(host.config, "kill", f"{host.name}:pid={pid}", "--reason", "stuck", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"sent SIGTERM to pid {pid}" in r.stdout, r.stdout
    wait_until_gone([pid], timeout=30)
    assert audit(host.config.parent)[-1]["status"] == "applied"
