#!/usr/bin/env bash
# How fast the engine's trainer teaches the built-in decoder the generated math task (issue 14): two chains of
# `ModelCompression.Bench --learn-math` runs, each one process at one libtorch/ONNX Runtime thread, side by side on the
# 2-core machine (which other people share: every log line records the load average). About 65 minutes of wall time.
#   dotnet build -c Release bench/ModelCompression.Bench
#   bench/GenerativeTeacher/run.sh [RESULTS_DIR]     # default /tmp/generative-teacher; logs: RESULTS_DIR/*.md
# Results are tables in markdown (one per run); bench/README.md's "GenerativeTeacher" section keeps those of record.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$root/bench/ModelCompression.Bench/bin/Release/net10.0/ModelCompression.Bench.dll"
out="${1:-/tmp/generative-teacher}"
mkdir -p "$out"
[ -f "$bench" ] || { echo "build first: dotnet build -c Release bench/ModelCompression.Bench" >&2; exit 2; }

learn() { # NAME ARGS...: one run, its table in NAME.md
  local name="$1"; shift
  dotnet "$bench" --learn-math --out "$out/$name" --label "$name" --threads 1 "$@" > "$out/$name.md" 2>&1
}

teacher_size=(--width 128 --heads 4 --layers 4 --ff 512)      # about 0.82M parameters
student_size=(--width 64 --heads 4 --layers 2 --ff 192)       # about 0.10M: at most 1/8 of the teacher

# Chain 1: the teacher candidate, level 2 (the generator's default), one hour.
(
  learn teacher-level2 --level 2 --train 20000 "${teacher_size[@]}" --batch 32 --lr 2e-3 --warmup 100 --schedule cosine \
    --steps 3500 --eval-every 250 --minutes 60 --stop-at 0.98
) &

# Chain 2: the same teacher on level 1 (is it too easy?), then the student by fine-tuning alone, ten minutes each:
# on 20,000 gold answers (what a perfect teacher's answers could give it) and on the issue's 500.
(
  learn teacher-level1 --level 1 --train 20000 "${teacher_size[@]}" --batch 32 --lr 2e-3 --warmup 100 --schedule cosine \
    --steps 1500 --eval-every 125 --minutes 20 --stop-at 0.99
  learn student-level2-20k --level 2 --train 20000 "${student_size[@]}" --batch 32 --lr 3e-3 --warmup 100 --schedule cosine \
    --steps 4000 --eval-every 250 --minutes 10
  learn student-level2-500 --level 2 --train 500 "${student_size[@]}" --batch 32 --lr 3e-3 --warmup 100 --schedule cosine \
    --steps 4000 --eval-every 250 --minutes 10
  # What is left of the hour: how far the teacher gets on level 3 (x joins + and -, numbers to 50) in 20 minutes.
  learn teacher-level3 --level 3 --train 20000 "${teacher_size[@]}" --batch 32 --lr 2e-3 --warmup 100 --schedule cosine \
    --steps 3500 --eval-every 250 --minutes 20
) &

wait
lscpu | grep -i 'model name' > "$out/machine.txt"
echo "done: $out"
