#!/usr/bin/env bash
# Install gputui @VERSION@ from this offline bundle: no package index, no network.
#
#   ./install.sh                      # as root: a venv in /opt/gputui, gputui linked into /usr/local/bin
#   ./install.sh --prefix ~/gputui    # anyone: a venv there, linked into ~/.local/bin
#   ./install.sh --uninstall [--prefix DIR]
#
# Running it again upgrades (or re-installs) in place: the venv ends up holding exactly this
# bundle's wheels. Nothing is changed until the machine, the Python and every file's checksum
# have been checked.
set -euo pipefail

VERSION="@VERSION@"
PY_VERSION="@PY_VERSION@"
PY_TAG="@PY_TAG@"
PLATFORM="@PLATFORM@"
ARCH="@ARCH@"
GLIBC="@GLIBC@"
MARKER=".gputui-offline"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=/opt/gputui
bin_dir=""
python=""
link=1
uninstall=0

usage() {
    cat <<EOF
usage: install.sh [--prefix DIR] [--bin-dir DIR | --no-link] [--python PATH] [--uninstall]

Installs gputui $VERSION for Python $PY_VERSION on $ARCH ($PLATFORM) from the wheels beside
this script, into a virtual environment, and links the gputui command onto PATH.

  --prefix DIR    where the virtual environment goes (default /opt/gputui)
  --bin-dir DIR   where the gputui link goes (default /usr/local/bin as root, else ~/.local/bin)
  --no-link       make no link; run DIR/bin/gputui
  --python PATH   the Python $PY_VERSION to use (default: python$PY_VERSION, else python3)
  --uninstall     remove the environment in --prefix and its link
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a folder"; bin_dir=$2; shift 2 ;;
        --bin-dir=*) bin_dir=${1#*=}; shift ;;
        --no-link) link=0; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs the path of a python$PY_VERSION"; python=$2; shift 2 ;;
        --python=*) python=${1#*=}; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[ -n "$prefix" ] || die "--prefix is empty"
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
prefix=${prefix%/}
if [ -z "$bin_dir" ]; then
    if [ "$(id -u)" = 0 ]; then bin_dir=/usr/local/bin; else bin_dir="$HOME/.local/bin"; fi
fi
case "$bin_dir" in /*) ;; *) bin_dir="$PWD/$bin_dir" ;; esac

# The link is ours only if it points at this prefix's gputui; anything else there is left alone.
our_link() { [ -L "$bin_dir/gputui" ] && [ "$(readlink "$bin_dir/gputui")" = "$prefix/bin/gputui" ]; }

if [ "$uninstall" = 1 ]; then
    [ -f "$prefix/$MARKER" ] || die "$prefix is not a gputui offline install (no $MARKER there): nothing removed"
    if our_link; then rm -f "$bin_dir/gputui" && say "removed the link $bin_dir/gputui"; fi
    rm -rf "$prefix"
    say "removed $prefix"
    exit 0
fi

# --- checks: nothing is written before all of them pass ------------------------------------

problems=()
machine=$(uname -m)
[ "$machine" = "$ARCH" ] || problems+=("this bundle is for $ARCH machines ($PLATFORM); this one is $machine: build one with make offline OFFLINE_ARGS='--platform manylinux2014_$machine'")

version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
found=""
if [ -n "$python" ]; then
    candidates=("$python")
else
    candidates=("python$PY_VERSION" python3)
fi
python=""
for candidate in "${candidates[@]}"; do
    path=$(command -v "$candidate" 2>/dev/null) || { found="$found $candidate (not found)"; continue; }
    have=$(version_of "$path") || { found="$found $path (does not run)"; continue; }
    if [ "$have" = "$PY_VERSION" ]; then python=$path; found=""; break; fi
    found="$found $path (Python $have)"
done
if [ -z "$python" ]; then
    problems+=("this bundle is for Python $PY_VERSION (its wheels are $PY_TAG); found:$found. Install Python $PY_VERSION and pass --python /path/to/python$PY_VERSION, or build a bundle for the Python here (Python 3.11 or newer) with make offline OFFLINE_ARGS='--python X.Y'")
fi

if [ -n "$python" ]; then
    libc=$("$python" -c 'import os; print(os.confstr("CS_GNU_LIBC_VERSION") or "")' 2>/dev/null || true)
    libc=${libc#glibc }
    if [ -z "$libc" ]; then
        problems+=("this bundle's wheels ($PLATFORM) need glibc $GLIBC or newer; this system has no glibc (musl?)")
    elif ! "$python" -c 'import sys; have, need = (tuple(int(x) for x in v.split(".")[:2]) for v in sys.argv[1:]); sys.exit(have < need)' "$libc" "$GLIBC"; then
        problems+=("this bundle's wheels ($PLATFORM) need glibc $GLIBC or newer; this system has $libc: build one with an older platform tag (--platform manylinux2014_$ARCH)")
    fi
fi

# The first folder of a path that exists: whether it is writable decides whether the path can be made.
existing_parent() {
    local dir=$1
    while [ ! -e "$dir" ]; do dir=$(dirname "$dir"); done
    printf '%s' "$dir"
}
where=$(existing_parent "$prefix")
[ -w "$where" ] || problems+=("cannot write $where for the environment $prefix: run as root, or pass --prefix DIR in a folder of yours")
if [ "$link" = 1 ]; then
    where=$(existing_parent "$bin_dir")
    [ -w "$where" ] || problems+=("cannot write $where for the link $bin_dir/gputui: pass --bin-dir DIR of yours, or --no-link")
fi

if [ ${#problems[@]} -gt 0 ]; then
    for problem in "${problems[@]}"; do printf 'install.sh: %s\n' "$problem" >&2; done
    die "nothing was installed"
fi

# Every file must match SHA256SUMS, and nothing unlisted may sit among the wheels (pip would use it).
"$python" - "$here" <<'PY' || die "the bundle in $here is damaged or was changed: nothing was installed"
import hashlib, os, sys
here = sys.argv[1]
listed = {}
with open(os.path.join(here, "SHA256SUMS"), encoding="utf-8") as f:
    for line in f:
        digest, name = line.rstrip("\n").split("  ", 1)
        listed[name] = digest
bad = []
for name, digest in sorted(listed.items()):
    try:
        with open(os.path.join(here, name), "rb") as f:
            got = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        bad.append("%s: %s" % (name, exc.strerror))
        continue
    if got != digest:
        bad.append("%s: checksum does not match SHA256SUMS" % name)
for name in sorted(os.listdir(os.path.join(here, "wheels"))):
    if "wheels/" + name not in listed:
        bad.append("wheels/%s: not listed in SHA256SUMS" % name)
for line in bad:
    print("install.sh: " + line, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

if [ -e "$prefix" ] && [ ! -f "$prefix/$MARKER" ] && [ -n "$(ls -A "$prefix" 2>/dev/null)" ]; then
    die "$prefix exists and is not a gputui install (no $MARKER there): choose another --prefix or empty it"
fi

# --- install --------------------------------------------------------------------------------

previous=""
if [ -f "$prefix/$MARKER" ]; then
    previous=$(sed -n 's/^version=//p' "$prefix/$MARKER")
    venv_python=$(version_of "$prefix/bin/python" || true)
    if [ "$venv_python" != "$PY_VERSION" ]; then
        say "replacing the environment in $prefix (Python ${venv_python:-unknown}) with one for Python $PY_VERSION"
        rm -rf "$prefix"
        previous=""
    fi
fi
if [ ! -x "$prefix/bin/python" ]; then
    # Without pip: Debian's python3 may lack ensurepip; pip comes from the bundle's own wheel.
    "$python" -m venv --without-pip "$prefix" || die "could not create a virtual environment in $prefix with $python"
fi

# pip reads no config or PIP_* setting of this machine: an index or constraint set there must not apply.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p')
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
pip_wheels=("$here"/wheels/pip-*.whl)
pip_wheel=${pip_wheels[0]}
[ -f "$pip_wheel" ] || die "the bundle has no pip wheel in $here/wheels"
"$prefix/bin/python" "$pip_wheel/pip" install --quiet --no-index --find-links "$here/wheels" --no-cache-dir \
    --no-warn-script-location --force-reinstall "gputui==$VERSION" pip ||
    die "pip could not install from $here/wheels (see above); $prefix may be incomplete: run install.sh again"
printf 'version=%s\npython=%s\nplatform=%s\n' "$VERSION" "$PY_VERSION" "$PLATFORM" >"$prefix/$MARKER"

got=$("$prefix/bin/gputui" --version 2>&1) || die "the installed gputui does not run: $got"
[ "$got" = "gputui $VERSION" ] || die "the installed gputui says '$got', expected 'gputui $VERSION'"

if [ "$link" = 1 ]; then
    mkdir -p "$bin_dir"
    if [ -e "$bin_dir/gputui" ] && ! [ -L "$bin_dir/gputui" ]; then
        say "left $bin_dir/gputui alone: it is not a link; run $prefix/bin/gputui"
    else
        ln -sfn "$prefix/bin/gputui" "$bin_dir/gputui"
        case ":$PATH:" in *":$bin_dir:"*) ;; *) say "note: $bin_dir is not on PATH" ;; esac
    fi
fi

if [ -n "$previous" ]; then
    say "gputui $previous -> $VERSION in $prefix (Python $PY_VERSION)"
else
    say "gputui $VERSION installed in $prefix (Python $PY_VERSION)"
fi
[ "$link" = 1 ] && [ -L "$bin_dir/gputui" ] && say "linked $bin_dir/gputui"
say "try: gputui demo"
