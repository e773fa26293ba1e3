#!/usr/bin/env bash
# The sample recipe (samples/FashionMnist) from an empty cache, idle and beside CPU hogs, with two builds of the
# CLI: BEFORE (main before the thread budget: libtorch's pools at their defaults, ONNX Runtime sessions with
# Environment.ProcessorCount threads and spinning) and AFTER (the thread budget; sessions without spinning). Prints
# one table row per run: wall time, 1-minute load average before and after it, exit code.
#
#   bench/Threads/run.sh BEFORE_CLI_DIR AFTER_CLI_DIR [HOGS]
#
# CLI_DIR: a built src/ModelCompression.Cli output folder (holding dotnet-compress.dll). HOGS: busy-loop processes
# beside the run (default nproc + 1: three on 2 cores, as in issue 12). Runs alternate before/after so that load
# changes on a shared machine hit both alike. RUN_TIMEOUT: seconds before a run is stopped (exit 124; default 400).
# WARMUP=1 adds an unmeasured run first; EXTRA=1 adds AFTER with --threads 1 and AFTER with OMP_WAIT_POLICY=PASSIVE
# (libgomp's threads sleep at once instead of spinning) beside the hogs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
before="$1"
after="$2"
hogs="${3:-$(( $(nproc) + 1 ))}"
recipe="$repo/samples/FashionMnist/fashion.compress.yaml"
work="$(mktemp -d)"
hog_pids=()
cleanup() {
    for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

load() { cut -d' ' -f1 /proc/loadavg; }

run() { # label cli extra-args...
    local label="$1" cli="$2"
    shift 2
    rm -rf "$work/cache" "$work/out"
    local l0 t0 t1 rc=0
    l0="$(load)"
    t0="$(date +%s.%N)"
    timeout "${RUN_TIMEOUT:-400}" env ${RUN_ENV:-} dotnet "$cli/dotnet-compress.dll" run "$recipe" --cache "$work/cache" --output "$work/out" "$@" > "$work/log" 2>&1 || rc=$?
    t1="$(date +%s.%N)"
    printf '| %s | %.1f | %s | %s | %s |\n' "$label" "$(echo "$t1 - $t0" | bc)" "$l0" "$(load)" "$rc"
    if [ "$rc" != 0 ]; then tail -5 "$work/log" >&2; fi
}

start_hogs() {
    for _ in $(seq "$hogs"); do
        sh -c 'while :; do :; done' &
        hog_pids+=("$!")
    done
}

stop_hogs() {
    for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait "${hog_pids[@]}" 2>/dev/null || true
    hog_pids=()
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ)"
echo "| run | wall s | load before | load after | exit |"
echo "|---|---|---|---|---|"
# WARMUP=1: one unmeasured run first, so that the page cache and the native-library copy are warm for all.
if [ "${WARMUP:-0}" = 1 ]; then run "warm-up (after, not counted)" "$after" > /dev/null; fi
run "idle, before" "$before"
run "idle, after" "$after"
start_hogs
run "$hogs hogs, before" "$before"
run "$hogs hogs, after" "$after"
if [ "${EXTRA:-0}" = 1 ]; then
    run "$hogs hogs, after --threads 1" "$after" --threads 1
    RUN_ENV=OMP_WAIT_POLICY=PASSIVE run "$hogs hogs, after, OMP_WAIT_POLICY=PASSIVE" "$after"
fi
stop_hogs
