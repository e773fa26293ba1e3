#!/usr/bin/env bash
# The full-size generation bench (issue 14, math): regenerates the level-1 word problems, then runs the recipes of this
# folder in order with the engine's own CLI: the teacher (finetune), the labels-only student (accepted as the
# baseline its significance gate reads), the distilled student (int8) and its int4 variant; then prints the numbers
# bench/README.md records ("GenerativeDistill"). Everything it writes goes under out/ (ignored by git).
# Usage: bench/GenerativeDistill/run.sh   (THREADS=2 by default; NO_BUILD=1 skips the two Release builds)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=${THREADS:-2}
out=$here/out
data=$out/data
mkdir -p "$out/reports" "$out/logs"

# shellcheck source=common.sh
source "$here/common.sh"
release_cli data

machine_header "$out/machine.txt"

make_math_data
(cd "$data" && wc -lc teacher-train.jsonl student-train.jsonl pool.jsonl validation.jsonl test.jsonl && sha256sum teacher-train.jsonl student-train.jsonl pool.jsonl validation.jsonl test.jsonl) | tee -a "$out/data.txt"

start_load_sampler "$out/load.txt"

# The teacher must pass its gate: a model that fails one is not published, and the students read its folder.
run_recipe math-teacher
run_recipe math-labels-only
"${cli[@]}" baseline accept "$here/math-labels-only.compress.yaml" --output "$out/models" --cache "$out/cache" | tail -n 1
# A student that misses a gate is still reported; the int4 variant runs either way.
student_rc=0
run_recipe math-student || student_rc=$?
int4_rc=0
run_recipe math-student-int4 || int4_rc=$?
# Sequence-level only (alpha 0), from the same generate stage: does token-level distillation help on top of it?
seq_rc=0
run_recipe math-student-seq || seq_rc=$?
python3 "$here/summarize.py" "$out" | tee "$out/summary.md"
echo "math-student exit $student_rc, math-student-int4 exit $int4_rc, math-student-seq exit $seq_rc"
