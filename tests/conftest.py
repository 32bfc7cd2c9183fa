"""Fixtures that several test modules share, and the markers that say what a
test brings up.

Markers (registered in pyproject.toml; ``make test-fast`` leaves out the first three):

- ``ssh``: the test starts real OpenSSH servers in network namespaces
  (tests/sshfleet.py);
- ``slurm``: the test starts the real Slurm controller (tests/slurm_cluster.py);
- ``prometheus``: the test runs against a real Prometheus;

They are given here, at collection, never by hand: a test gets a marker when
its module imports the support module that brings the thing up (directly or
through another tests/ module, anywhere in the file), or when it uses the
fixture that starts it (``fleet``, ``slurm``), so a new test cannot forget one.

Plain helpers live in support modules named for what they are:
tests/screen_reading.py, tests/ui_apps.py, tests/recordings.py,
tests/health_data.py, tests/action_cli.py, tests/act_agent.py, tests/waiting.py.
Test modules never import each other (tests/test_test_layout.py checks it).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.recordings import write_sim_recording
from tests.sshfleet import SshFleet, running_fleet

TESTS = Path(__file__).parent

# The support module that brings a thing up, and the marker a test using it gets.
MARK_BY_MODULE = {"tests.sshfleet": "ssh", "tests.slurm_cluster": "slurm", "tests.prometheus_server": "prometheus"}
# The fixture that starts a thing (used by the test or by a fixture it uses), and its marker.
MARK_BY_FIXTURE = {"fleet": "ssh", "slurm": "slurm"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    """The namespace SSH fleet (tests/sshfleet.py), one per test module that uses it."""
    with running_fleet(tmp_path_factory.mktemp("sshfleet")) as f:
        yield f


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """Five minutes of four simulated hosts, recorded as the recorder writes."""
    path = tmp_path / "incident.gtrec"
    write_sim_recording(path, hosts=4, seconds=300)
    return path


def tests_modules_imported(path: Path) -> set[str]:
    """The ``tests.*`` modules a file imports, at any depth in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # from tests import sshfleet
    return {name for name in names if name.startswith("tests.")}


@functools.cache
def support_modules(path: Path) -> frozenset[str]:
    """The tests/ modules a test file uses, directly or through other tests/ modules."""
    seen: set[str] = set()
    todo = [path]
    while todo:
        for name in tests_modules_imported(todo.pop()) - seen:
            seen.add(name)
            file = TESTS / f"{name.removeprefix('tests.').replace('.', '/')}.py"
            if file.is_file():
                todo.append(file)
    return frozenset(seen)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marks = {MARK_BY_MODULE[name] for name in support_modules(item.path) if name in MARK_BY_MODULE}
        marks |= {MARK_BY_FIXTURE[name] for name in getattr(item, "fixturenames", ()) if name in MARK_BY_FIXTURE}
        for mark in sorted(marks):
            item.add_marker(mark)
