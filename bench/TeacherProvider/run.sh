#!/usr/bin/env bash
# Teacher-run speed-up of the CUDA execution provider over the CPU: the same recipe, `--execution-provider cpu`
# against `--execution-provider cuda`, in alternating pairs. Needs an NVIDIA GPU with its driver, CUDA 13 and
# cuDNN 9, and ONNX Runtime's GPU build in the NuGet packages folder
# (`dotnet package download Microsoft.ML.OnnxRuntime.Gpu.Linux@1.32.0 -o ~/.nuget/packages`).
# Usage: bench/TeacherProvider/run.sh CLI_DIR [PAIRS] [RECIPE]
#   CLI_DIR holds dotnet-compress (e.g. from `dotnet build -c Release src/ModelCompression.Cli -o DIR`);
#   RECIPE defaults to the sample's (a PyTorch CNN teacher over 6000 training images; use a recipe with a larger
#   teacher or more data to see what a GPU buys on real work).
# What is timed: from the engine's "Running the teacher on N ... samples" line to its "100 %" line, i.e. the
# teacher's batched pass over the training data (session creation included), read from the engine's own progress
# lines with a timestamp taken as each arrives. Every run has a fresh cache, so the teacher really runs; the run is
# stopped once that pass is done (what follows is student training on the CPU, the same for both providers).
# `dotnet compress doctor --execution-provider cuda` runs first and must pass.
set -euo pipefail
cli=$1 pairs=${2:-5}
recipe=$(realpath "${3:-$(dirname "$0")/../../samples/FashionMnist/fashion.compress.yaml}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cli/dotnet-compress" doctor --execution-provider cuda

# Prints the seconds of the teacher pass of one run on provider $1.
teacher_seconds() {
  local cache=$work/cache-$1-$RANDOM start="" now line
  exec 3< <(CI=true exec "$cli/dotnet-compress" run "$recipe" --execution-provider "$1" --cache "$cache" -o "$work/out" 2>&1)
  local pid=$!
  while IFS= read -r line <&3; do
    now=$(date +%s.%N)
    case $line in
      *"Running the teacher on "*) start=$now ;;
      *"teacher over the "*"100 %"*)
        if [[ -n $start ]]; then echo "$now - $start" | bc; kill "$pid" 2>/dev/null || true; break; fi ;;
      *error*) echo "$line" >&2 ;;
    esac
  done
  exec 3<&-
  wait "$pid" 2>/dev/null || true
  rm -rf "$cache"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$pairs"); do
  if (( i % 2 )); then order="cpu cuda"; else order="cuda cpu"; fi
  for provider in $order; do
    echo "$i $provider $(teacher_seconds "$provider")"
  done
done | tee "$work/times"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/times" <<'PY'
import statistics, sys
t = {}
for i, provider, seconds in (l.split() for l in open(sys.argv[1])):
    t.setdefault(int(i), {})[provider] = float(seconds)
cpu = [v["cpu"] for v in t.values()]; cuda = [v["cuda"] for v in t.values()]
speedup = [v["cpu"] / v["cuda"] for v in t.values()]
print(f"teacher pass: cpu median {statistics.median(cpu):.3f} s (min {min(cpu):.3f}), cuda median {statistics.median(cuda):.3f} s (min {min(cuda):.3f}), "
      f"speed-up cpu/cuda median of pairs {statistics.median(speedup):.2f}x (min {min(speedup):.2f}, max {max(speedup):.2f})")
PY
