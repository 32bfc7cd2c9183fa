"""The agent bundle: one zip that ``python3`` runs with nothing installed.

It holds the agent and simulator packages and the installed ``pynvml.py``
(nvidia-ml-py is a single pure-Python file), plus a ``__main__.py`` so that
``python3 bundle.zip --once`` runs the agent. Entries carry a fixed
timestamp, so the same sources always give the same bytes, and the bundle
can be uploaded once per host under its content hash.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pynvml

import gputui

PACKAGES = ("agent", "sim")
# Written so that any python3 can parse it: an old one says so and stops.
MAIN = (
    "import sys\n"
    "if sys.version_info < (3, 8):\n"
    "    sys.stdout.write('gputui:old-python3 %d.%d\\n' % sys.version_info[:2])\n"
    "    sys.exit(0)\n"
    "from gputui.agent.main import main\n"
    "sys.exit(main())\n"
)
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _entries() -> list[tuple[str, bytes]]:
    root = Path(gputui.__file__).parent
    files = [("__main__.py", MAIN.encode()), ("pynvml.py", Path(pynvml.__file__).read_bytes())]
    files.append(("gputui/__init__.py", (root / "__init__.py").read_bytes()))
    files.append(("gputui/protocol.py", (root / "protocol.py").read_bytes()))
    for package in PACKAGES:
        for path in sorted((root / package).glob("*.py")):
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


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def write(path: Path) -> str:
    data = build()
    path.write_bytes(data)
    return digest(data)
