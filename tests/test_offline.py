"""The offline bundle installs and runs on a machine with no network, from outside the checkout.

The bundle is built the way an operator builds it (``scripts/offline.py``, on a machine that
reaches an index), unpacked into a fresh folder, and installed by its ``install.sh`` inside a
network namespace with nothing but a down loopback: any reach for an index would fail there.
The installed ``gputui`` then runs from a folder outside the checkout with a bare environment,
so nothing of the checkout or its venv can stand in for what the wheel forgot.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import time
import tomllib
import zipfile
from dataclasses import dataclass
from fcntl import ioctl
from pathlib import Path

import pytest

from gputui import __version__
from tests.other_user import NOBODY, python_for_nobody

REPO = Path(__file__).resolve().parent.parent
HERE_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
# A Python this machine has not got, for the bundle that must be refused here.
OTHER_PY = "3.13" if HERE_PY == "3.12" else "3.12"
# The interpreter the venv was made from, found by name on PATH as an operator's shell would.
BASE_BIN = str(Path(getattr(sys, "_base_executable", sys.executable)).parent)


@dataclass(frozen=True)
class Built:
    wheel: Path
    tarball: Path


@dataclass(frozen=True)
class Installed:
    prefix: Path
    bin_dir: Path
    home: Path  # a working folder and HOME outside the checkout

    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin_dir}:{BASE_BIN}:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}

    def gputui(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The installed command, run with no network, a bare environment and outside the checkout."""
        return offline([str(self.bin_dir / "gputui"), *args], cwd=self.home, env=self.env(), timeout=timeout)


def offline(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run in a new network namespace: only a loopback that is down, so no index can be reached."""
    return subprocess.run(["unshare", "--net", "--", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def build(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "offline.py"), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def unpack(tarball: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    (folder,) = into.iterdir()
    return folder


def install(folder: Path, prefix: Path, bin_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BASE_BIN}:/usr/bin:/bin", "HOME": str(prefix.parent), "LANG": "C.UTF-8"}
    return offline(["./install.sh", "--prefix", str(prefix), "--bin-dir", str(bin_dir), *extra], cwd=folder, env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a network namespace")
    out = tmp_path_factory.mktemp("dist")
    done = build(out)
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("gputui-*-py3-none-any.whl")
    (tarball,) = out.glob("gputui-offline-*.tar.gz")
    return Built(wheel, tarball)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("site")
    folder = unpack(built.tarball, root / "media")
    done = install(folder, root / "opt-gputui", root / "bin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"gputui {__version__} installed in {root / 'opt-gputui'}" in done.stdout
    home = root / "home"
    home.mkdir()
    return Installed(root / "opt-gputui", root / "bin", home)


def checkout_files() -> set[str]:
    """What the wheel must carry: every module, stylesheet and theme of the checkout."""
    found = set()
    for path in (REPO / "gputui").rglob("*"):
        if path.is_file() and path.suffix in {".py", ".tcss"} and "__pycache__" not in path.parts:
            found.add(path.relative_to(REPO).as_posix())
    found.update(f"gputui/themes/{p.name}" for p in (REPO / "themes").glob("*.toml"))
    found.add("gputui/config.example.toml")
    return found


def test_the_wheel_carries_every_file_and_names_only_runtime_dependencies(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"gputui-{__version__}.dist-info/METADATA").decode()
    missing = checkout_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert not [n for n in names if n.startswith("tests/")]
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires == declared  # no extra: pytest, ruff and mypy are nowhere in what an operator installs


def test_the_tarball_lists_its_wheels_and_their_sums(built: Built) -> None:
    expected = f"gputui-offline-{__version__}-cp{HERE_PY.replace('.', '')}-manylinux2014_"
    assert built.tarball.name.startswith(expected)
    sums = built.tarball.with_name(built.tarball.name + ".sha256").read_text(encoding="utf-8")
    assert sums.endswith(f"  {built.tarball.name}\n")
    with tarfile.open(built.tarball) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
        listed = tar.extractfile(f"{built.tarball.name.removesuffix('.tar.gz')}/SHA256SUMS")
        assert listed is not None
        in_sums = {line.split("  ", 1)[1] for line in listed.read().decode().splitlines()}
    for name in ("install.sh", "INSTALL.txt", "manifest.json", f"wheels/{built.wheel.name}"):
        assert name in members and name in in_sums
    for dependency in ("textual", "pydantic_core", "asyncssh", "cryptography", "nvidia_ml_py", "pip"):
        assert any(m.startswith(f"wheels/{dependency}-") for m in members), dependency


def test_the_same_checkout_builds_the_same_bytes(built: Built, tmp_path: Path) -> None:
    """A site that rebuilds the bundle from the same commit can compare it with the one it was given."""
    done = build(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / built.wheel.name).read_bytes() == built.wheel.read_bytes()
    assert (tmp_path / built.tarball.name).read_bytes() == built.tarball.read_bytes()


def test_installed_gputui_runs_with_no_network_from_outside_the_checkout(installed: Installed) -> None:
    assert installed.gputui("--version").stdout.strip() == f"gputui {__version__}"
    where = offline(
        [str(installed.prefix / "bin" / "python"), "-c", "import gputui; print(gputui.__file__)"],
        cwd=installed.home,
        env=installed.env(),
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.prefix), where.stdout

    snapshot = installed.gputui("snapshot", "--demo", "--format", "json")
    assert snapshot.returncode == 0, snapshot.stderr
    data = json.loads(snapshot.stdout)
    assert data["schema"] == "gputui.snapshot/1"
    assert len(data["hosts"]) == 4 and all(h["state"] == "live" and h["gpus"] for h in data["hosts"])

    check = installed.gputui("check", "--demo", "--scenario", "incident")
    assert check.returncode == 2, check.stdout + check.stderr
    assert "CRITICAL" in check.stdout

    example = installed.gputui("example-config")
    assert example.stdout == (REPO / "config.example.toml").read_text(encoding="utf-8")
    (installed.home / "fleet.toml").write_text(example.stdout, encoding="utf-8")
    checked = installed.gputui("check-config", "--config", "fleet.toml", "--timeout", "5")
    assert "fleet.toml: valid (" in checked.stdout, checked.stdout + checked.stderr
    # Its local host runs the installed agent on simulated GPUs; the SSH hosts are names nothing resolves here.
    assert re.search(r"^sim-local .* ok: agent " + re.escape(__version__), checked.stdout, re.MULTILINE), checked.stdout

    agent = installed.gputui("bundle", "-o", "agent.zip")
    assert agent.returncode == 0, agent.stderr
    # The agent zip runs on a bare interpreter, as on a GPU host with nothing installed.
    once = offline(
        [str(Path(BASE_BIN) / "python3"), "-I", "-S", "agent.zip", "--sim", "healthy", "--once", "--gpus", "2"],
        cwd=installed.home,
        env=installed.env(),
    )
    frames = [json.loads(line) for line in once.stdout.splitlines()]
    assert [f["type"] for f in frames] == ["hello", "sample"], once.stderr
    assert len(frames[1]["gpus"]) == 2


def test_installed_gputui_finds_every_shipped_theme(installed: Installed) -> None:
    names = offline(
        [
            str(installed.prefix / "bin" / "python"),
            "-c",
            "from gputui.ui.themes import load_themes; print(*[t.name for t in load_themes()[0]])",
        ],
        cwd=installed.home,
        env=installed.env(),
    )
    shipped = {tomllib.loads(p.read_text(encoding="utf-8"))["name"] for p in (REPO / "themes").glob("*.toml")}
    assert set(names.stdout.split()) == shipped, names.stderr


def run_in_terminal(argv: list[str], env: dict[str, str], cwd: Path, wait_for: bytes) -> tuple[int, str]:
    """Run ``argv`` on an 80x24 Linux console (a pty), wait until ``wait_for`` is drawn, press q."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the program, or leave at once
        try:
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    drawn = b""
    deadline = time.monotonic() + 60
    quit_sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the program exited and the pty closed
                break
            if not chunk:
                break
            drawn += chunk
        if not quit_sent and wait_for in drawn:
            os.write(fd, b"q")
            quit_sent = True
    else:
        os.kill(pid, 9)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert quit_sent, f"{wait_for!r} never appeared on screen: {drawn[-2000:]!r}"
    return os.waitstatus_to_exitcode(status), drawn.decode("utf-8", "replace")


def test_installed_demo_opens_on_a_linux_console_with_the_console_theme(installed: Installed) -> None:
    env = dict(installed.env(), TERM="linux")
    argv = [shutil.which("unshare") or "unshare", "--net", "--", str(installed.bin_dir / "gputui"), "demo"]
    code, screen = run_in_terminal(argv, env, installed.home, wait_for=b"gpu-01")
    assert code == 0
    # The console theme is the one file that makes this screen pure ASCII: without it the
    # fallback theme draws Unicode a Linux VT cannot show.
    assert not re.findall(r"[^\x00-\x7f]", screen)


def test_running_install_sh_again_upgrades_in_place(built: Built, tmp_path: Path) -> None:
    folder = unpack(built.tarball, tmp_path / "media")
    prefix, bin_dir = tmp_path / "gputui", tmp_path / "bin"
    assert install(folder, prefix, bin_dir).returncode == 0
    (prefix / "lib" / "stray-file").write_text("left by hand", encoding="utf-8")
    again = install(folder, prefix, bin_dir)
    assert again.returncode == 0, again.stderr
    assert f"gputui {__version__} -> {__version__} in {prefix}" in again.stdout
    assert (prefix / "lib" / "stray-file").exists()  # the same environment, not a new one
    assert (bin_dir / "gputui").resolve() == (prefix / "bin" / "gputui").resolve()
    removed = install(folder, prefix, bin_dir, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not prefix.exists() and not (bin_dir / "gputui").is_symlink()


def test_a_changed_bundle_is_refused_before_anything_is_installed(built: Built, tmp_path: Path) -> None:
    folder = unpack(built.tarball, tmp_path / "media")
    with (folder / "wheels" / built.wheel.name).open("ab") as f:
        f.write(b"\0")
    shutil.copy(next((folder / "wheels").glob("pip-*.whl")), folder / "wheels" / "planted-1.0-py3-none-any.whl")
    done = install(folder, tmp_path / "gputui", tmp_path / "bin")
    assert done.returncode == 1
    assert f"wheels/{built.wheel.name}: checksum does not match SHA256SUMS" in done.stderr
    assert "wheels/planted-1.0-py3-none-any.whl: not listed in SHA256SUMS" in done.stderr
    assert not (tmp_path / "gputui").exists() and not (tmp_path / "bin").exists()


def test_an_existing_folder_that_is_not_a_gputui_install_is_left_alone(built: Built, tmp_path: Path) -> None:
    folder = unpack(built.tarball, tmp_path / "media")
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "data.db").write_text("someone's", encoding="utf-8")
    done = install(folder, tmp_path / "opt", tmp_path / "bin")
    assert done.returncode == 1 and "is not a gputui install" in done.stderr
    assert [p.name for p in (tmp_path / "opt").iterdir()] == ["data.db"]


@pytest.fixture(scope="module")
def cross(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cross")
    done = build(out, "--wheel", str(built.wheel), "--python", OTHER_PY, "--platform", "manylinux2014_aarch64")
    assert done.returncode == 0, done.stderr
    (tarball,) = out.glob("gputui-offline-*.tar.gz")
    return tarball


def test_a_cross_built_bundle_holds_wheels_for_its_python_and_machine(cross: Path) -> None:
    tag = "cp" + OTHER_PY.replace(".", "")
    assert cross.name == f"gputui-offline-{__version__}-{tag}-manylinux2014_aarch64.tar.gz"
    with tarfile.open(cross) as tar:
        wheels = [Path(m.name).name for m in tar.getmembers() if "/wheels/" in m.name]
    core = [w for w in wheels if w.startswith("pydantic_core-")]
    assert len(core) == 1 and f"-{tag}-{tag}-" in core[0] and "aarch64" in core[0]
    assert all(w.endswith(("-none-any.whl", "aarch64.whl")) for w in wheels), wheels


def test_a_bundle_for_another_python_and_machine_says_what_it_needs(cross: Path, tmp_path: Path) -> None:
    folder = unpack(cross, tmp_path / "media")
    done = install(folder, tmp_path / "gputui", tmp_path / "bin")
    assert done.returncode == 1
    assert f"this bundle is for Python {OTHER_PY}" in done.stderr and f"(Python {HERE_PY})" in done.stderr
    assert f"this bundle is for aarch64 machines (manylinux2014_aarch64); this one is {os.uname().machine}" in done.stderr
    assert "nothing was installed" in done.stderr
    assert not (tmp_path / "gputui").exists()


def test_a_bundle_for_a_python_gputui_cannot_run_on_is_refused_at_build(tmp_path: Path) -> None:
    done = build(tmp_path, "--python", "3.10")
    assert done.returncode == 2 and "gputui needs Python 3.11 or newer, got 3.10" in done.stderr
    assert not list(tmp_path.iterdir())


def test_an_operator_without_root_installs_into_a_folder_of_theirs(built: Built) -> None:
    python = python_for_nobody(same_version=True)
    # Not under pytest's tmp_path: that is root's alone, and this user must read the bundle.
    shared = Path(tempfile.mkdtemp(prefix="gputui-offline-nonroot-"))
    try:
        shared.chmod(0o777)
        folder = unpack(built.tarball, shared / "media")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(shared), "LANG": "C.UTF-8"}

        def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
            return offline([*NOBODY, "./install.sh", "--python", python, *args], cwd=folder, env=env)

        refused = as_nobody()  # the default, /opt/gputui, is root's
        assert refused.returncode == 1
        assert "cannot write /opt for the environment /opt/gputui: run as root, or pass --prefix DIR" in refused.stderr
        assert not Path("/opt/gputui").exists()
        done = as_nobody("--prefix", str(shared / "gputui"))
        assert done.returncode == 0, done.stderr
        assert (shared / ".local" / "bin" / "gputui").is_symlink()  # the non-root default for the link
        assert (shared / "gputui").stat().st_uid == 65534
        version = offline([*NOBODY, str(shared / ".local" / "bin" / "gputui"), "--version"], cwd=shared, env=env)
        assert version.stdout.strip() == f"gputui {__version__}"
    finally:
        shutil.rmtree(shared)
