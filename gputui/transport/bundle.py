"""The agent bundle: one zip that ``python3`` runs with nothing installed.

It holds the agent and simulator packages and the installed ``pynvml.py``
(nvidia-ml-py is a single pure-Python file), plus a ``__main__.py`` so that
``python3 bundle.zip --once`` runs the agent. Entries carry a fixed
timestamp, so the same sources always give the same bytes, and the bundle
can be uploaded once per host under its content hash.

The ``__main__.py`` is gputui/agent/bundle_main.py: run as a zip, the bundle
unpacks itself into the user's cache once and runs from there, where Python
keeps compiled modules (zipimport compiles every module on every start); the
SSH transport unpacks it into the same folder itself and runs the folder.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pynvml

import gputui
from gputui.agent import bundle_main
from gputui.agent.bundle_main import digest

__all__ = ["MAIN", "PACKAGES", "build", "digest", "write"]

PACKAGES = ("agent", "sim")
_MAIN_PY = Path(bundle_main.__file__)
# The bundle's __main__.py. Written so that any python3 can parse it: an old one says so and stops.
MAIN = _MAIN_PY.read_text(encoding="utf-8")
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _entries() -> list[tuple[str, bytes]]:
    root = Path(gputui.__file__).parent
    files = [("__main__.py", _MAIN_PY.read_bytes()), ("pynvml.py", Path(pynvml.__file__).read_bytes())]
    files.append(("gputui/__init__.py", (root / "__init__.py").read_bytes()))
    files.append(("gputui/protocol.py", (root / "protocol.py").read_bytes()))
    for package in PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            if path != _MAIN_PY:  # it is the bundle's __main__.py, not a module the agent imports
                files.append((f"gputui/{package}/{path.name}", path.read_bytes()))
    return files


def build() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in _entries():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def write(path: Path) -> str:
    data = build()
    path.write_bytes(data)
    return digest(data)
