"""Build the offline bundle: gputui and every runtime dependency as wheels, for a site with no package index.

Run on a machine that reaches an index (``make offline``); carry the tarball to the air-gapped
site and run its ``install.sh`` there. One tarball per Python version and platform, because the
compiled dependencies (pydantic-core, cryptography, cffi, psutil) are built for one of each:

    python scripts/offline.py                                   # this Python, manylinux2014 of this machine
    python scripts/offline.py --python 3.11 3.12 --platform manylinux2014_x86_64 manylinux2014_aarch64

Dependencies are fetched with ``pip download --only-binary=:all:`` and explicit tags even for this
machine, so the wheels are the portable manylinux ones, never a wheel built here against this
machine's libraries. The tarball's entries are sorted and dated from the commit, so the same wheels
give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "offline_bundle"
# gputui's own floor (pyproject's requires-python): a bundle for an older Python could never install.
MIN_PYTHON = (3, 11)
PLATFORM_RE = re.compile(r"^(manylinux(?:1|2010|2014)|manylinux_\d+_\d+)_(x86_64|aarch64|ppc64le|s390x)$")
LEGACY_GLIBC = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}


class BuildError(Exception):
    """A problem with what was asked for or with a step, said in the operator's words."""


@dataclass(frozen=True)
class Target:
    python: str  # "3.12"
    platform: str  # "manylinux2014_x86_64"

    @property
    def py_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def arch(self) -> str:
        match = PLATFORM_RE.match(self.platform)
        assert match, self.platform
        return match.group(2)

    @property
    def glibc(self) -> str:
        match = PLATFORM_RE.match(self.platform)
        assert match, self.platform
        family = match.group(1)
        return LEGACY_GLIBC.get(family) or ".".join(family.split("_")[1:3])


def python_arg(text: str) -> str:
    match = re.fullmatch(r"3\.(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a Python version such as 3.12, got {text!r}")
    if (3, int(match.group(1))) < MIN_PYTHON:
        raise argparse.ArgumentTypeError(f"gputui needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer, got {text}")
    return text


def platform_arg(text: str) -> str:
    if not PLATFORM_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"expected a manylinux platform tag such as manylinux2014_x86_64 or manylinux_2_28_aarch64, got {text!r}"
        )
    return text


def default_platform() -> str:
    machine = platform.machine()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine)
    return f"manylinux2014_{arch}"


def project_version() -> str:
    text = (REPO / "gputui" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise BuildError("gputui/__init__.py has no __version__ line")
    return match.group(1)


def run(argv: list[str], what: str) -> None:
    """Run one pip step; on failure show its output, since pip says best what it could not find.

    SOURCE_DATE_EPOCH dates the wheel's entries too, so the same commit builds the same wheel.
    """
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(source_date()))
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {done.returncode}):\n{tail}")


# Left in a checkout by builds and tools; a stale build/ would hand setuptools files the tree no longer has.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


def build_wheel(out: Path) -> Path:
    """gputui's own wheel, built from a clean copy of this checkout in pip's isolated build environment."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gputui-wheel-") as tmp:
        source = Path(tmp) / "source"
        shutil.copytree(REPO, source, symlinks=True, ignore=NOT_SOURCE)
        wheels = Path(tmp) / "wheels"
        run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source)],
            "building gputui's wheel",
        )
        built = sorted(wheels.glob("gputui-*.whl"))
        if len(built) != 1:
            raise BuildError(f"pip built {len(built)} gputui wheels, expected one")
        final = out / built[0].name
        shutil.copyfile(built[0], final)
    return final


def download(wheel: Path, target: Target, dest: Path) -> None:
    """Every runtime dependency of ``wheel``, and pip itself (to bootstrap a venv without ensurepip)."""
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
        "--python-version", target.python, "--implementation", "cp", "--platform", target.platform,
        "--dest", str(dest), str(wheel), "pip",
    ]  # fmt: skip
    run(argv, f"downloading the dependencies for Python {target.python} on {target.platform}")


def fill(template: str, target: Target, version: str) -> str:
    values = {
        "@VERSION@": version,
        "@PY_VERSION@": target.python,
        "@PY_TAG@": target.py_tag,
        "@PLATFORM@": target.platform,
        "@ARCH@": target.arch,
        "@GLIBC@": target.glibc,
    }
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_date() -> int:
    """The tarball's timestamp: SOURCE_DATE_EPOCH, else the commit's time, so rebuilds give the same bytes."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False)
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else 0


def write_tarball(folder: Path, tarball: Path, mtime: int) -> None:
    def entry(path: Path) -> tarfile.TarInfo:
        info = tarfile.TarInfo(f"{folder.name}/{path.relative_to(folder)}" if path != folder else folder.name)
        info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
        if path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        else:
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in [folder, *sorted(folder.rglob("*"))]:
            info = entry(path)
            if info.isdir():
                tar.addfile(info)
            else:
                with path.open("rb") as f:
                    tar.addfile(info, f)
    partial = tarball.with_name(tarball.name + ".part")
    with partial.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz:
        gz.write(buf.getvalue())
    partial.replace(tarball)


def runtime_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines: shown in the manifest, and a dev dependency there is a packaging bug."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]


def build_bundle(wheel: Path, target: Target, out: Path, version: str) -> Path:
    name = f"gputui-offline-{version}-{target.py_tag}-{target.platform}"
    with tempfile.TemporaryDirectory(prefix="gputui-offline-") as tmp:
        folder = Path(tmp) / name
        wheels = folder / "wheels"
        wheels.mkdir(parents=True)
        download(wheel, target, wheels)
        for template in ("install.sh", "INSTALL.txt"):
            text = fill((TEMPLATES / template).read_text(encoding="utf-8"), target, version)
            (folder / template).write_text(text, encoding="utf-8")
        (folder / "install.sh").chmod(0o755)
        manifest = {
            "gputui": version,
            "python": target.python,
            "platform": target.platform,
            "requires": runtime_requirements(wheel),
            "wheels": sorted(p.name for p in wheels.iterdir()),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        sums = "".join(f"{sha256(p)}  {p.relative_to(folder)}\n" for p in files)
        (folder / "SHA256SUMS").write_text(sums, encoding="utf-8")
        tarball = out / f"{name}.tar.gz"
        write_tarball(folder, tarball, source_date())
    (out / f"{tarball.name}.sha256").write_text(f"{sha256(tarball)}  {tarball.name}\n", encoding="utf-8")
    return tarball


def check_wheel_metadata(wheel: Path) -> None:
    """Refuse a wheel whose metadata names a test or dev tool: installing it offline would need them."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    dev = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in declared.get("dependency-groups", {}).get("dev", [])}
    named = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in runtime_requirements(wheel)}
    if named & dev:
        raise BuildError(f"{wheel.name} requires dev tools: {', '.join(sorted(named & dev))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build gputui's offline bundle (one tarball per Python and platform).")
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    parser.add_argument("--python", nargs="+", type=python_arg, default=[here], help=f"target Python versions (default {here})")
    parser.add_argument(
        "--platform",
        nargs="+",
        type=platform_arg,
        default=[default_platform()],
        help=f"wheel platforms (default {default_platform()})",
    )
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the tarballs go (default dist/)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel", type=Path, help="use this gputui wheel instead of building one from the checkout")
    source.add_argument("--wheel-only", action="store_true", help="build gputui's wheel into --out and stop")
    args = parser.parse_args(argv)
    try:
        version = project_version()
        args.out.mkdir(parents=True, exist_ok=True)
        wheel = args.wheel or build_wheel(args.out)
        if not wheel.is_file():
            raise BuildError(f"no wheel at {wheel}")
        check_wheel_metadata(wheel)
        print(f"gputui wheel: {wheel}")
        if args.wheel_only:
            return 0
        for py in args.python:
            for plat in args.platform:
                tarball = build_bundle(wheel, Target(py, plat), args.out, version)
                print(f"offline bundle: {tarball} ({tarball.stat().st_size / 1e6:.1f} MB)")
    except BuildError as exc:
        print(f"offline: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
