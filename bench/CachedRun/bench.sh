#!/usr/bin/env bash
# Wall time of a fully cached `dotnet compress run` of the sample, two builds of the CLI alternating.
# Usage: bench/CachedRun/bench.sh BEFORE_CLI_DIR AFTER_CLI_DIR [PAIRS]
#   (each dir holds dotnet-compress, e.g. from `dotnet publish src/ModelCompression.Cli -c Release -r linux-x64 --self-contained false -o DIR`:
#   the published tool is ReadyToRun, a plain `dotnet build` is not)
# The sample is copied to a temporary folder so nothing is written into the source tree; one untimed run per
# build fills the cache (a first run trains: minutes; CACHE=DIR reuses a filled one), then PAIRS pairs are timed,
# which goes first alternating, each pair followed by `dotnet-compress --version` of the after build: the floor,
# a process start.
set -euo pipefail
before=$1 after=$2 pairs=${3:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# -p keeps the timestamps: fresh copies would be too new for the hash memo to trust, and every run would hash them.
cp -rp "$(dirname "$0")/../../samples/FashionMnist/." "$work/sample"
cache=${CACHE:-$work/cache}
run() { "$1/dotnet-compress" run "$work/sample/fashion.compress.yaml" --cache "$cache" -o "$work/out-$2" >/dev/null; }
run "$before" before
run "$after" after
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$pairs"); do
  if (( i % 2 )); then order="before after"; else order="after before"; fi
  for which in $order; do
    dir=$before; [[ $which == after ]] && dir=$after
    start=$(date +%s.%N); run "$dir" "$which"; end=$(date +%s.%N)
    echo "$i $which $(echo "$end - $start" | bc)"
  done
  start=$(date +%s.%N); "$after/dotnet-compress" --version >/dev/null; end=$(date +%s.%N)
  echo "$i start $(echo "$end - $start" | bc)"
done | tee "$work/times"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/times" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
t = {}
for i, which, s in rows:
    t.setdefault(int(i), {})[which] = float(s)
b = [v["before"] for v in t.values()]; a = [v["after"] for v in t.values()]; f = [v["start"] for v in t.values()]
r = [v["after"] / v["before"] for v in t.values()]
print(f"before median {statistics.median(b):.3f} s (min {min(b):.3f}), after median {statistics.median(a):.3f} s (min {min(a):.3f}), after/before median of pairs {statistics.median(r):.3f}, process start (--version) median {statistics.median(f):.3f} s")
PY
echo "left next to the outputs: $(ls -A "$work/out-after" | tr '\n' ' ')"
