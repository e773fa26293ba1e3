#!/usr/bin/env bash
# Cold vs remote-hit wall time of `dotnet compress run`, against Azure Blob Storage in Azurite (issue 16).
# Usage: bench/RemoteCache/bench.sh CLI_DIR [sample|full|all]
#   CLI_DIR holds dotnet-compress, e.g. from
#     dotnet publish src/ModelCompression.Cli -c Release -r linux-x64 --self-contained false -o DIR
#   sample: samples/FashionMnist as committed (6,000 + 2,000 images).
#   full:   the sample's recipe on the full Fashion-MNIST of Debian's dataset-fashion-mnist (60,000 + 10,000 images;
#           apt-get install dataset-fashion-mnist); EPOCHS=N (default 8, the sample's) sizes it down.
# Each workload is run by "machines" that are folders on this one computer, one process each:
#   cold-local   a cold run with no remote cache (the reference; sample only, or COLD_LOCAL=1)
#   cold-upload  machine A: cold, remote cache read-write, so it uploads every entry it builds
#   remote-hit   machine B: an empty cache folder, remote cache read: every entry fetched, nothing trained
#   local-hit    machine B again: every entry in its folder now
#   push, pull   cache push of A's folder to a fresh prefix and cache pull of it into an empty folder (the transfers
#                alone, process start included); --version: a process start, the floor of every row
# A's and B's students are compared byte for byte; report.json's cache totals give the entries and bytes moved.
# Azurite (from .tools/azurite, which build/test.sh installs, or MODELCOMPRESSION_AZURITE) keeps blobs in memory on
# 127.0.0.1, so the times are the engine's and the storage protocol's, not a network's.
set -euo pipefail
cli=$1 which=${2:-all}
root=$(cd "$(dirname "$0")/../.." && pwd)
azurite=${MODELCOMPRESSION_AZURITE:-$root/.tools/azurite/node_modules/.bin/azurite-blob}
work=$(mktemp -d)
azurite_pid=
trap '[[ -n "$azurite_pid" ]] && kill "$azurite_pid" 2>/dev/null; rm -rf "$work"' EXIT

"$azurite" --blobHost 127.0.0.1 --blobPort 0 --inMemoryPersistence --skipApiVersionCheck --disableTelemetry --silent > "$work/azurite.log" 2>&1 &
azurite_pid=$!
port=
for _ in $(seq 1 60); do
  port=$(grep -o 'listens on http://127.0.0.1:[0-9]*' "$work/azurite.log" | grep -o '[0-9]*$' || true)
  [[ -n "$port" ]] && break
  sleep 1
done
[[ -n "$port" ]] || { cat "$work/azurite.log"; echo "Azurite did not start" >&2; exit 1; }
# Azurite's published development account; the engine reads it from the variable named on the command line.
export BENCH_CACHE_CONNECTION="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg); Azurite on 127.0.0.1:$port"

timed() {
  local label=$1
  shift
  local start end
  start=$(date +%s.%N)
  "$cli/dotnet-compress" "$@" > "$work/$label.log" 2>&1 || { tail -30 "$work/$label.log"; echo "$label failed" >&2; exit 1; }
  end=$(date +%s.%N)
  printf '%-24s %8.1f s\n' "$label" "$(echo "$end - $start" | bc)"
}

cache_totals() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["cache"]["total"]
stages = ", ".join(f'{s["stage"]} {s["cache"]["source"]}' for s in r["stages"])
print(f'    {t["local_hits"]} local hits, {t["remote_hits"]} remote hits, {t["built"]} built; {t["bytes_down"] / 1e6:.2f} MB down, {t["bytes_up"] / 1e6:.2f} MB up; stages: {stages}')
PY
}

workload() {
  local name=$1 recipe=$2 cold_local=$3
  local model report
  model=$(basename "$recipe" .compress.yaml).student.onnx
  report=$(basename "$recipe" .compress.yaml).student.report.json
  local remote=(--remote-cache "azure://bench/$name" --remote-cache-credential-env BENCH_CACHE_CONNECTION)
  echo "== $name ($recipe)"
  if [[ "$cold_local" == 1 ]]; then
    timed "$name cold-local" run "$recipe" --cache "$work/$name-local" -o "$work/$name-out-local"
  fi
  timed "$name cold-upload" run "$recipe" --cache "$work/$name-a" -o "$work/$name-out-a" "${remote[@]}" --remote-cache-mode read-write
  cache_totals "$work/$name-out-a/$report"
  timed "$name remote-hit" run "$recipe" --cache "$work/$name-b" -o "$work/$name-out-b" "${remote[@]}" --remote-cache-mode read
  cache_totals "$work/$name-out-b/$report"
  timed "$name local-hit" run "$recipe" --cache "$work/$name-b" -o "$work/$name-out-b" "${remote[@]}" --remote-cache-mode read
  # The transfers alone, as CI steps: A's whole folder pushed to a fresh prefix, then pulled into an empty folder.
  timed "$name push" cache push --cache "$work/$name-a" --remote-cache "azure://bench/$name-push" --remote-cache-credential-env BENCH_CACHE_CONNECTION
  sed 's/^/    /' "$work/$name push.log"
  timed "$name pull" cache pull --cache "$work/$name-c" --remote-cache "azure://bench/$name-push" --remote-cache-credential-env BENCH_CACHE_CONNECTION
  sed 's/^/    /' "$work/$name pull.log"
  timed "$name --version" --version
  cmp "$work/$name-out-a/$model" "$work/$name-out-b/$model" && echo "    machine B's student is byte-identical to machine A's ($(stat -c %s "$work/$name-out-a/$model") bytes)"
  grep -h "^Summary:" "$work/$name remote-hit.log" | sed 's/^/    /'
}

if [[ "$which" == sample || "$which" == all ]]; then
  # -p: the copies keep their times, as a checkout's files would.
  cp -rp "$root/samples/FashionMnist/." "$work/sample"
  workload sample "$work/sample/fashion.compress.yaml" 1
fi

if [[ "$which" == full || "$which" == all ]]; then
  data=/usr/share/datasets/fashion-mnist
  [[ -f "$data/train-images-idx3-ubyte.gz" ]] || { echo "full: apt-get install dataset-fashion-mnist first" >&2; exit 1; }
  mkdir -p "$work/full"
  sed -e "s#data/train-#$data/train-#g; s#data/t10k-#$data/t10k-#g; s#teacher: teacher/teacher.onnx#teacher: $root/samples/FashionMnist/teacher/teacher.onnx#; s#epochs: 8#epochs: ${EPOCHS:-8}#; s#fashion.student.onnx#full.student.onnx#" \
    "$root/samples/FashionMnist/fashion.compress.yaml" > "$work/full/full.compress.yaml"
  grep -E "train:|epochs" "$work/full/full.compress.yaml" | sed 's/^/    /'
  workload full "$work/full/full.compress.yaml" "${COLD_LOCAL:-0}"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
