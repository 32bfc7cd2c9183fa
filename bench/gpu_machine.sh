#!/usr/bin/env bash
# What only a machine with real GPUs can show, in one run of a few minutes:
# the agent on real NVML (frames, NVML calls and CPU per sample, bytes on the
# wire, the exporter's /metrics), the offline bundle installed on a machine
# that reaches no network, the dashboard's own commands (snapshot, check,
# record) on those GPUs, and `gputui agent --once` timed against `nvitop -1`.
#
# Here first: `make gpu-kit` (the offline bundles, the agent zip and nvitop's
# wheel in .gpu-kit/). On the lent machine, from the repository root, with
# .gpu-kit carried:  OUT=/some/folder bash bench/gpu_machine.sh
# Then here: python bench/gpu_machine_report.py FOLDER (the figures, checked).
# GPU_CHECK_SIM=1 runs the same steps on simulated GPUs: the script's own
# check, on a machine without one (GPU_CHECK_PYTHON: an interpreter with
# pynvml and psutil, where the machine's python3 has neither). Every step
# has a time limit and a line in steps.log; a step that fails leaves the
# others to run.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
KIT=${GPU_KIT:-$REPO/.gpu-kit}
OUT=${OUT:?set OUT to the folder the results go to}
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$REPO" || exit 2
export PYTHONPATH=$REPO  # the agent from this checkout, with the machine's own pynvml and psutil
PY=${GPU_CHECK_PYTHON:-python3}
AGENT=(--state-dir "$T/state" --host-name gpu-machine)
SIM_TOML=""
if [ -n "${GPU_CHECK_SIM:-}" ]; then
    AGENT+=(--sim healthy --sim-processes synthetic --seed 1)
    SIM_TOML='sim = "healthy"'
    echo "simulated GPUs (GPU_CHECK_SIM): a check of this script, not of NVML" >"$OUT/SIMULATED"
fi

# The command's wall and CPU time (its children's included), as JSON on stderr.
CPU_OF='import json, os, subprocess, sys, time
start = time.monotonic()
child = subprocess.Popen(sys.argv[1:])
_, status, use = os.wait4(child.pid, 0)
print(json.dumps({"cpu_of": sys.argv[1:], "wall_s": round(time.monotonic() - start, 3), "user_s": use.ru_utime, "sys_s": use.ru_stime, "status": status}), file=sys.stderr)'

# step NAME SECONDS COMMAND...: run it under a time limit, and log its status and duration.
step() {
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s%N)
    timeout -k 5 "$limit" "$@"
    rc=$?
    printf '%-10s rc=%-3s %6s ms\n' "$name" "$rc" "$((($(date +%s%N) - start) / 1000000))" >>"$OUT/steps.log"
    return 0
}

machine() {
    date -u
    uname -a
    "$PY" -V
    echo "cpus: $(nproc)"
    "$PY" -c 'import pynvml, psutil; print("nvidia-ml-py", getattr(pynvml, "__version__", "?"), "psutil", psutil.__version__)'
    nvidia-smi
    nvidia-smi -q | grep -iE "driver version|cuda version|product name|persistence mode" | sort | uniq -c
}
step machine 30 bash -c "$(declare -f machine); PY='$PY'; machine" >"$OUT/machine.txt" 2>&1

# The agent alone, reading the GPUs: one shot, then 30 samples at 1 s with its own count of NVML calls and CPU.
step once 60 "$PY" -c "$CPU_OF" "$PY" -m gputui.agent --once --stats "${AGENT[@]}" >"$OUT/once.ndjson" 2>"$OUT/once.err"
step stream 60 "$PY" -c "$CPU_OF" "$PY" -m gputui.agent --count 30 --interval 1 --stats "${AGENT[@]}" \
    >"$OUT/stream.ndjson" 2>"$OUT/stream.err"

# What a dashboard gets (changes), what Prometheus gets (/metrics) and the bundle as SSH runs it, side by side.
step changes 60 "$PY" -m gputui.agent --changes --count 30 --interval 1 "${AGENT[@]}" >"$OUT/changes.ndjson" 2>"$OUT/changes.err" &
exporter() {
    "$PY" -m gputui.agent --metrics-listen 127.0.0.1:9499 "$@" 2>"$OUT/exporter.err" &
    local agent=$! n
    for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        sleep 1
        python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9499/metrics", timeout=5).read().decode())' \
            >"$OUT/metrics.txt" 2>/dev/null && [ "$n" -ge 5 ] && break  # a few samples in
    done
    kill "$agent"
    wait "$agent"
}
step exporter 40 bash -c "$(declare -f exporter); OUT='$OUT' PY='$PY'; exporter $(printf '%q ' "${AGENT[@]}")" &
if [ -f "$KIT/agent.zip" ]; then
    step bundle 60 python3 -I -S "$KIT/agent.zip" --once "${AGENT[@]}" >"$OUT/bundle.ndjson" 2>"$OUT/bundle.err" &
fi
wait

# The offline bundle for this machine's Python, installed as a site would: no network, checked against its sums.
GPUTUI=""
want=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
tarball=$(ls "$KIT"/gputui-offline-*-"$want"-*.tar.gz 2>/dev/null | head -1)
if [ -z "$tarball" ]; then
    for minor in 13 12 11; do  # another Python 3.11+ on the machine, for a bundle the kit has
        if command -v "python3.$minor" >/dev/null; then
            tarball=$(ls "$KIT"/gputui-offline-*-cp3"$minor"-*.tar.gz 2>/dev/null | head -1)
            [ -n "$tarball" ] && break
        fi
    done
fi
install() {
    (cd "$(dirname "$1")" && sha256sum -c "$(basename "$1").sha256") || return 1
    tar xzf "$1" -C "$T" && cd "$T"/gputui-offline-*/ && ./install.sh --prefix "$T/gputui" --no-link
}
if [ -n "$tarball" ]; then
    step install 180 bash -c "$(declare -f install); T='$T'; install '$tarball'" >"$OUT/install.log" 2>&1
    [ -x "$T/gputui/bin/gputui" ] && GPUTUI=$T/gputui/bin/gputui
else
    echo "no offline bundle in $KIT for $want (nor a python3.11+ it has one for)" >"$OUT/install.log"
fi

if [ -n "$GPUTUI" ]; then
    unset PYTHONPATH  # from here on the installed gputui, not this checkout
    "$GPUTUI" --version >"$OUT/version.txt" 2>&1
    printf '[[hosts]]\nname = "gpu-machine"\ntransport = "local"\n%s\n' "$SIM_TOML" >"$T/config.toml"
    cp "$T/config.toml" "$OUT/config.toml"
    export GPUTUI_CONFIG=$T/config.toml HOME=$T/home XDG_CACHE_HOME=$T/home/.cache
    mkdir -p "$T/home"
    step snapshot 60 "$GPUTUI" snapshot --config "$T/config.toml" --format json >"$OUT/snapshot.json" 2>"$OUT/snapshot.err"
    step check 60 "$GPUTUI" check --config "$T/config.toml" >"$OUT/check.txt" 2>&1
    step record 60 "$GPUTUI" record --config "$T/config.toml" -o "$OUT/gpu-machine.gtrec" --duration 20 >"$OUT/record.log" 2>&1
fi

# nvitop from its wheel (pure Python: unpacked, it runs), as its console script would run it.
NVITOP=""
wheel=$(ls "$KIT"/nvitop-*.whl 2>/dev/null | head -1)
if [ -n "$wheel" ] && python3 -m zipfile -e "$wheel" "$T/nvitop-lib"; then
    NVITOP=$T/nvitop
    printf '#!%s\nimport sys\nsys.path.insert(0, %s)\nfrom nvitop.cli import main\nsys.exit(main())\n' \
        "$("$PY" -c 'import sys; print(sys.executable)')" "'$T/nvitop-lib'" >"$NVITOP"
    chmod +x "$NVITOP"
    step nvitop 60 "$NVITOP" -1 >"$OUT/nvitop.txt" 2>&1
fi

# Start time, turn by turn, nvitop among the cases: with the installed venv's interpreter (its console script is
# the `gputui agent` case, its package the `python -m` one), else the machine's python3 and this checkout.
starter=$PY
[ -n "$GPUTUI" ] && starter=$T/gputui/bin/python
real=--real
[ -n "${GPU_CHECK_SIM:-}" ] && real=""
step start 240 "$starter" bench/agent_start.py $real --runs 9 ${NVITOP:+--nvitop "$NVITOP"} >"$OUT/agent_start.md" 2>"$OUT/agent_start.err"
cat "$OUT/steps.log"
