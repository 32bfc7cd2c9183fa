"""The agent bundle's ``__main__.py``: what ``python3 agent.zip`` runs first.

Run from a zip, every module is read by zipimport, which cannot write compiled
bytecode: each start compiled pynvml and the agent anew (pynvml alone took
81 ms to import that way, against 7 ms from cached bytecode). So the zip
unpacks itself once into the user's cache, ``~/.cache/gputui/agent-<hash>/``
(under ``$XDG_CACHE_HOME`` where that is set), the folder the SSH transport
unpacks the same bundle into, and runs from there, where Python keeps the
compiled modules in ``__pycache__``: later starts import them as any installed
module.

The folder is named by the zip's content hash (``gputui bundle`` prints it), so
a new bundle never runs an old one's code. It appears whole or not at all: the
zip is unpacked into a folder of its own beside it, then renamed into place.
It is used only when it and the folder above it belong to this user and no one
else can write to them: the code run is the code this user unpacked. Where the
cache cannot be written (a read-only home, a full disk, a folder of another
user's), the agent runs from the zip, as before, only slower to start.

This file stands first in the zip, so that any python3 parses it and an old
one says so and stops: no f-strings, no annotated variables, no ``from
__future__`` import. Run from a folder (as the SSH transport runs it), it starts
the agent at once.
"""

import os
import stat
import sys

if sys.version_info < (3, 8):  # noqa: UP036 (a host's python3 may be older than gputui's own)
    sys.stdout.write("gputui:old-python3 %d.%d\n" % sys.version_info[:2])
    sys.exit(0)

from typing import Optional  # after the version check: an old python3 may lack it

# Which hash names the bundle: the dashboard's upload folder and gputui/transport/bundle.py use this one too.
DIGEST_CHARS = 16


def digest(data: bytes) -> str:
    """The bundle's name in the caches: the first 16 hex digits of its SHA-256."""
    try:  # the hash's own C module: hashlib would load OpenSSL first, 4 ms of a 50 ms start
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # Python 3.8 to 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]  # 3.12 on
        except ImportError:  # a Python built without them
            from hashlib import sha256  # type: ignore[assignment,unused-ignore]
    return str(sha256(data).hexdigest()[:DIGEST_CHARS])


def cache_root() -> str:
    """Where bundles are unpacked: ``$XDG_CACHE_HOME/gputui``, or ``~/.cache/gputui`` as the SSH transport uses."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: the XDG spec says to ignore it
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gputui")


def private(path: str) -> bool:
    """A real folder (not a link) of this user's that no one else can write to: code in it is code this user put there."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def unpack(data: bytes, root: str, folder: str) -> None:
    """Unpack the bundle into ``folder`` whole or not at all: into a new folder beside it, then renamed.

    Two first starts at once each unpack their own copy; the second rename
    fails on the folder the first put there, which is as good, and the copy
    is removed. Raises OSError (or the zip's error) where it cannot.
    """
    import io
    import shutil
    import tempfile
    import zipfile

    os.makedirs(root, mode=0o700, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s." % os.path.basename(folder), dir=root)  # mode 700
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not os.path.isfile(os.path.join(folder, "__main__.py")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after the rename


def unpacked(zip_path: str, root: Optional[str] = None) -> Optional[str]:
    """The folder to run the bundle at ``zip_path`` from, unpacked on the first start; None to run from the zip."""
    root = cache_root() if root is None else root
    try:
        with open(zip_path, "rb") as f:
            data = f.read()
        folder = os.path.join(root, "agent-" + digest(data))
        if not os.path.isfile(os.path.join(folder, "__main__.py")):
            unpack(data, root, folder)
    except Exception:  # OSError, a damaged zip: the zip itself still runs, or says what is wrong with it
        return None
    if private(root) and private(folder) and os.path.isfile(os.path.join(folder, "__main__.py")):
        return folder
    return None


def start() -> int:
    """Run the agent: from the unpacked folder when this is the zip and the cache allows, else from where it is."""
    if os.path.isfile(sys.path[0]):  # `python3 agent.zip`: the zip is on the path, not a folder
        folder = unpacked(sys.path[0])
        if folder is not None:
            sys.path[0] = folder  # nothing of gputui is imported yet: it all comes from the folder
    from gputui.agent.main import main

    return main()


if __name__ == "__main__":
    sys.exit(start())
