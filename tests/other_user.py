"""Running code as another user (uid 65534) in tests, whatever folder the checkout sits in.

That user may be unable to read the checkout or its venv (a clone under /root, a mkdtemp folder),
so it runs a system interpreter on files put where it can read them, never the checkout itself.
"""

from __future__ import annotations

import subprocess
import sys

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def python_for_nobody(same_version: bool = False) -> str:
    """An interpreter uid 65534 can find and run (as a shell looks it up); with ``same_version``, this Python's X.Y."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [f"/usr/bin/python{here}", getattr(sys, "_base_executable", sys.executable)]
    if not same_version:
        candidates.append("/usr/bin/python3")
    for candidate in candidates:
        probe = [*NOBODY, "sh", "-c", 'command -v "$1" >/dev/null && "$1" -c pass', "-", candidate]
        if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
            return candidate
    raise AssertionError(f"none of {candidates} can be run by uid 65534: the test needs a python3 that user can run")
