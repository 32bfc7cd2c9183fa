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
# others to run, and none starts once the whole run's time (GPU_CHECK_S,
# default 480 s) is spent. Nothing on the machine is changed: NVML is kept
# open by a process of this run's own while it lasts, as persistence mode
# would, so that each timed start pays the tools' own start and not the
# driver's loading of every GPU (which would drown the comparison).
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
KIT=${GPU_KIT:-$REPO/.gpu-kit}
OUT=${OUT:?set OUT to the folder the results go to}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
cd "$REPO" || exit 2
PY=${GPU_CHECK_PYTHON:-python3}
for tool in timeout tar "$PY"; do
    command -v "$tool" >/dev/null || { echo "gpu_machine.sh: $tool not found" | tee "$OUT/steps.log" >&2; exit 2; }
done
# In the checkout (not /tmp, which may be mounted noexec): what is run from here must be executable.
T=$(mktemp -d "$REPO/.gpu-run.XXXXXX") || exit 2
HOLDER=""
trap '[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null; rm -rf "$T"' EXIT
export PYTHONPATH=$REPO  # the agent from this checkout, with the machine's own pynvml and psutil
AGENT=(--state-dir "$T/state" --host-name gpu-machine)
SIM_TOML=""
if [ -n "${GPU_CHECK_SIM:-}" ]; then
    AGENT+=(--sim healthy --sim-processes synthetic --seed 1)
    SIM_TOML='sim = "healthy"'
    echo "simulated GPUs (GPU_CHECK_SIM): a check of this script, not of NVML" >"$OUT/SIMULATED"
fi
: >"$OUT/steps.log"

now_ms() { "$PY" -c 'import time; print(int(time.time() * 1000))'; }
BEGAN=$(now_ms)
BUDGET_MS=$((${GPU_CHECK_S:-480} * 1000))

# The command's wall and CPU time (its children's included) as JSON on stderr; its exit status as its own.
CPU_OF='import json, os, subprocess, sys, time
start = time.monotonic()
child = subprocess.Popen(sys.argv[1:])
_, status, use = os.wait4(child.pid, 0)
print(json.dumps({"cpu_of": sys.argv[1:], "wall_s": round(time.monotonic() - start, 3), "user_s": use.ru_utime, "sys_s": use.ru_stime, "status": status}), file=sys.stderr)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))'

# step NAME SECONDS COMMAND...: run it under a time limit, stdin closed (under `timeout` a process
# reading the terminal would be stopped), and log its status and duration; skipped when time is up.
step() {
    local name=$1 limit=$2 start rc
    shift 2
    start=$(now_ms)
    if [ $((start - BEGAN + limit * 1000)) -gt "$BUDGET_MS" ] && [ $((start - BEGAN)) -gt $((BUDGET_MS / 2)) ]; then
        printf '%-10s rc=%-3s %s\n' "$name" "-" "skipped: the run's time is nearly spent" >>"$OUT/steps.log"
        return 0
    fi
    timeout -k 5 "$limit" "$@" </dev/null
    rc=$?
    printf '%-10s rc=%-3s %6s ms\n' "$name" "$rc" "$(($(now_ms) - start))" >>"$OUT/steps.log"
    return 0
}

machine() {
    date -u
    uname -r
    "$PY" -V
    echo "cpus: $(nproc)"
    "$PY" -c 'import pynvml, psutil; print("nvidia-ml-py", getattr(pynvml, "__version__", "?"), "psutil", psutil.__version__)'
    nvidia-smi -q | grep -iE "driver version|cuda version|product name|persistence mode|mig mode|current +:" | sort | uniq -c
    nvidia-smi
}
step machine 30 bash -c "$(declare -f machine); PY='$PY'; machine" >"$OUT/machine.txt" 2>&1

if [ -z "${GPU_CHECK_SIM:-}" ]; then  # NVML kept open for the run (see above); it ends with the script
    "$PY" -c 'import pynvml, time
pynvml.nvmlInit()
handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
print("holding NVML open: %d GPUs" % len(handles), flush=True)
time.sleep(3600)' >"$OUT/holder.txt" 2>&1 </dev/null &
    HOLDER=$!
fi

# The agent alone, reading the GPUs: one shot, then 60 samples at 1 s with its own count of NVML calls and CPU.
step once 60 "$PY" -c "$CPU_OF" "$PY" -m gputui.agent --once --stats "${AGENT[@]}" >"$OUT/once.ndjson" 2>"$OUT/once.err"

# nvitop from its wheel (pure Python: unpacked, it runs), as its console script would run it, with the
# interpreter the timed agents use (the installed venv's where there is one, else the machine's python3).
unpack_nvitop() {  # $1: the interpreter
    local wheel
    wheel=$(ls "$KIT"/nvitop-*.whl 2>/dev/null | head -1)
    [ -n "$wheel" ] && "$1" -m zipfile -e "$wheel" "$T/nvitop-lib" || return 1
    printf '#!%s\nimport sys\nsys.path.insert(0, %s)\nfrom nvitop.cli import main\nsys.exit(main())\n' \
        "$("$1" -c 'import sys; print(sys.executable)')" "'$T/nvitop-lib'" >"$T/nvitop"
    chmod +x "$T/nvitop"
}

# The offline bundle for this machine's Python, installed as a site would: no network, checked against its sums.
GPUTUI=""
want=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
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
    tar xzf "$1" -C "$T" && cd "$T"/gputui-offline-*/ && bash ./install.sh --prefix "$T/gputui" --no-link
}
if [ -n "$tarball" ]; then
    step install 120 env -u PYTHONPATH bash -c "$(declare -f install); T='$T'; install '$tarball'" >"$OUT/install.log" 2>&1
    [ -x "$T/gputui/bin/gputui" ] && GPUTUI=$T/gputui/bin/gputui
else
    echo "no offline bundle in $KIT for $want (nor a python3.11+ it has one for): the dashboard is not checked here" >"$OUT/install.log"
fi
starter=$PY
[ -n "$GPUTUI" ] && starter=$T/gputui/bin/python
NVITOP=""
unpack_nvitop "$starter" && NVITOP=$T/nvitop
[ -n "$NVITOP" ] && step nvitop 60 "$NVITOP" -1 >"$OUT/nvitop.txt" 2>&1

# Start time, turn by turn, nvitop among the cases: with the installed venv's interpreter (its console
# script is the `gputui agent` case, its package the `python -m` one), else python3 and this checkout.
real=--real
[ -n "${GPU_CHECK_SIM:-}" ] && real=""
start_env=(env)
[ -n "$GPUTUI" ] && start_env=(env -u PYTHONPATH)
step start 150 "${start_env[@]}" "$starter" bench/agent_start.py $real --runs 15 --budget-s 100 ${NVITOP:+--nvitop "$NVITOP"} \
    >"$OUT/agent_start.md" 2>"$OUT/agent_start.err"

# What running on costs (the one-shot above is subtracted from it), and beside it what a dashboard
# gets (changes), what Prometheus gets (/metrics) and the bundle as SSH runs it.
step stream 90 "$PY" -c "$CPU_OF" "$PY" -m gputui.agent --count 60 --interval 1 --stats "${AGENT[@]}" \
    >"$OUT/stream.ndjson" 2>"$OUT/stream.err" &
step changes 60 "$PY" -m gputui.agent --changes --count 30 --interval 1 "${AGENT[@]}" >"$OUT/changes.ndjson" 2>"$OUT/changes.err" &
exporter() {
    local port agent n
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$PY" -m gputui.agent --metrics-listen "127.0.0.1:$port" "$@" 2>"$OUT/exporter.err" &
    agent=$!
    for n in $(seq 1 20); do
        sleep 1
        kill -0 "$agent" 2>/dev/null || break  # it could not listen: exporter.err says why
        # No proxy: one set for the site's network must not take a request for 127.0.0.1.
        "$PY" -c 'import sys, urllib.request as u
sys.stdout.write(u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=5).read().decode())' \
            "http://127.0.0.1:$port/metrics" >"$OUT/metrics.part" 2>/dev/null &&
            mv "$OUT/metrics.part" "$OUT/metrics.txt" && [ "$n" -ge 5 ] && break  # a few samples in
    done
    rm -f "$OUT/metrics.part"
    kill "$agent" 2>/dev/null
    wait "$agent"
}
step exporter 40 bash -c "$(declare -f exporter); OUT='$OUT' PY='$PY'; exporter $(printf '%q ' "${AGENT[@]}")" &
if [ -f "$KIT/agent.zip" ]; then
    step bundle 60 "$PY" -I -S "$KIT/agent.zip" --once "${AGENT[@]}" >"$OUT/bundle.ndjson" 2>"$OUT/bundle.err" &
fi
wait

# The installed dashboard's own commands on this machine's GPUs, through a `transport = "local"` host.
if [ -n "$GPUTUI" ]; then
    "$GPUTUI" --version >"$OUT/version.txt" 2>&1
    # The agents' ledger in the scratch folder: nothing left in /var/lib/gputui on a lent machine.
    printf '[actions]\nstate_dir = "%s"\n\n[[hosts]]\nname = "gpu-machine"\ntransport = "local"\n%s\n' \
        "$T/ledger" "$SIM_TOML" >"$T/config.toml"
    cp "$T/config.toml" "$OUT/config.toml"
    mkdir -p "$T/home"
    DASH=(env -u PYTHONPATH HOME="$T/home" XDG_CONFIG_HOME="$T/home/.config" XDG_STATE_HOME="$T/home/.state")
    step snapshot 40 "${DASH[@]}" "$GPUTUI" snapshot --config "$T/config.toml" --format json >"$OUT/snapshot.json" 2>"$OUT/snapshot.err"
    step check 40 "${DASH[@]}" "$GPUTUI" check --config "$T/config.toml" >"$OUT/check.txt" 2>&1
    step record 40 "${DASH[@]}" "$GPUTUI" record --config "$T/config.toml" -o "$OUT/gpu-machine.gtrec" --duration 20 >"$OUT/record.log" 2>&1
fi
cat "$OUT/steps.log"
