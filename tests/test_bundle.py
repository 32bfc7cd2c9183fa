"""The agent runs from its bundle on a bare interpreter: stdlib and pynvml only.

Run as a zip (``python3 agent.zip``), the bundle unpacks itself once into the
user's cache and runs from there, so that Python keeps compiled modules
between starts (zipimport compiles every module on every start); where the
cache cannot be written or cannot be trusted, it runs from the zip itself.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from gputui.agent import bundle_main
from gputui.frames import Hello, Sample, parse_frame
from gputui.transport import bundle
from tests.waiting import wait_until_gone

# The interpreter the venv was made from: with -I -S it sees no site-packages at all.
BARE = [getattr(sys, "_base_executable", sys.executable), "-I", "-S"]
ONCE = ["--sim", "healthy", "--gpus", "2", "--sim-processes", "synthetic", "--once"]


def run_zip(zip_path: Path, cache: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``python3 agent.zip --once`` on the bare interpreter, with ``cache`` as $XDG_CACHE_HOME."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    argv = [*BARE, *flags, str(zip_path), *ONCE, "--state-dir", str(zip_path.parent / "state")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True, env=env)


def assert_samples(out: str, gpus: int = 2) -> None:
    frames = [parse_frame(line) for line in out.splitlines()]
    assert isinstance(frames[0], Hello) and isinstance(frames[1], Sample), out[:300]
    assert len(frames[1].gpus) == gpus


def written_bundle(tmp_path: Path) -> tuple[Path, str]:
    zip_path = tmp_path / "gputui-agent.zip"
    return zip_path, bundle.write(zip_path)


def test_bare_interpreter_lacks_the_dashboard_packages() -> None:
    for module in ("textual", "pydantic", "asyncssh", "pynvml"):
        result = subprocess.run([*BARE, "-c", f"import {module}"], capture_output=True, timeout=30)
        assert result.returncode != 0, f"{module} is importable by the bare interpreter"


def test_agent_runs_from_the_bundle_on_a_bare_interpreter(tmp_path: Path) -> None:
    zip_path, _ = written_bundle(tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run(
        [*BARE, str(zip_path), "--sim", "healthy", "--once", "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    frames = [parse_frame(line) for line in out.stdout.splitlines()]
    assert isinstance(frames[0], Hello) and isinstance(frames[1], Sample)
    assert len(frames[1].gpus) == 8
    procs = [p for g in frames[1].gpus for p in g.processes]
    assert procs and all("gputui.sim.standin" in (p.command or "") for p in procs)
    wait_until_gone([p.pid for p in procs], timeout=10.0)


def test_bundle_bytes_are_reproducible() -> None:
    assert bundle.build() == bundle.build()


def test_the_bundle_is_named_by_its_sha256_as_the_ssh_upload_folder_is() -> None:
    """The zip's own hash (without hashlib's OpenSSL) names the same folder the SSH transport unpacks into."""
    data = bundle.build()
    assert bundle.digest(data) == bundle_main.digest(data) == hashlib.sha256(data).hexdigest()[:16]


def test_the_zip_unpacks_once_into_the_cache_and_later_starts_run_compiled_modules(tmp_path: Path) -> None:
    zip_path, digest = written_bundle(tmp_path)
    cache = tmp_path / "cache"
    assert_samples(run_zip(zip_path, cache).stdout)
    folder = cache / "gputui" / f"agent-{digest}"
    assert (folder / "__main__.py").read_text(encoding="utf-8") == bundle.MAIN
    assert oct(folder.stat().st_mode & 0o777) == "0o700"  # other users cannot swap the agent
    assert list((folder / "__pycache__").glob("pynvml.*.pyc")), "the first start left no compiled pynvml"
    assert sorted(p.name for p in (cache / "gputui").iterdir()) == [f"agent-{digest}"]  # no half-unpacked copy left
    later = run_zip(zip_path, cache, "-v")  # -v: the interpreter says where each module's code came from
    assert_samples(later.stdout)
    assert f"code object from '{folder}/__pycache__/pynvml." in later.stderr
    assert f"code object from '{folder}/gputui/agent/__pycache__/main." in later.stderr


def test_the_zip_runs_from_itself_where_no_cache_can_be_written(tmp_path: Path) -> None:
    """A read-only home, as root can meet it too: a file stands where the cache folder would go."""
    zip_path, _ = written_bundle(tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = run_zip(zip_path, blocker / "cache", "-v")
    assert_samples(result.stdout)
    assert "pynvml" in result.stderr and "__pycache__/pynvml." not in result.stderr  # compiled from the zip, as before
    assert blocker.read_text() == ""


def test_a_cache_folder_others_can_write_to_is_never_run(tmp_path: Path) -> None:
    """Another user who could write to the folder could have put any code there: the zip runs itself instead."""
    zip_path, digest = written_bundle(tmp_path)
    cache = tmp_path / "cache"
    planted = cache / "gputui" / f"agent-{digest}"
    (planted / "gputui" / "agent").mkdir(parents=True)
    (planted / "__main__.py").write_text("print('planted')\n")
    (planted / "gputui" / "__init__.py").write_text("")
    (planted / "gputui" / "agent" / "__init__.py").write_text("")
    (planted / "gputui" / "agent" / "main.py").write_text("def main():\n    print('planted')\n    return 0\n")
    planted.chmod(0o777)
    result = run_zip(zip_path, cache)
    assert "planted" not in result.stdout
    assert_samples(result.stdout)


def test_a_folder_left_without_its_main_is_not_run_and_the_zip_still_is(tmp_path: Path) -> None:
    """Whatever left the folder incomplete (not this code: it renames only a whole copy), the agent still starts."""
    zip_path, digest = written_bundle(tmp_path)
    cache = tmp_path / "cache"
    (cache / "gputui" / f"agent-{digest}" / "gputui").mkdir(parents=True)
    assert_samples(run_zip(zip_path, cache).stdout)
    assert bundle_main.unpacked(str(zip_path), str(cache / "gputui")) is None


def test_a_second_unpack_meets_the_first_ones_folder_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Two first starts at once: the later rename fails on the earlier's folder, which serves, and its copy goes."""
    data = bundle.build()
    root = tmp_path / "gputui"
    folder = root / f"agent-{bundle.digest(data)}"
    bundle_main.unpack(data, str(root), str(folder))
    first = {p.relative_to(folder) for p in folder.rglob("*")}
    bundle_main.unpack(data, str(root), str(folder))
    assert {p.relative_to(folder) for p in folder.rglob("*")} == first
    assert [p.name for p in root.iterdir()] == [folder.name]


def test_first_starts_at_once_all_run_and_share_one_folder(tmp_path: Path) -> None:
    zip_path, digest = written_bundle(tmp_path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [*BARE, str(zip_path), *ONCE, "--state-dir"]
    starts = [
        subprocess.Popen([*argv, str(tmp_path / f"state{i}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(4)
    ]
    for proc in starts:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert_samples(out)
    assert [p.name for p in (tmp_path / "cache" / "gputui").iterdir()] == [f"agent-{digest}"]
