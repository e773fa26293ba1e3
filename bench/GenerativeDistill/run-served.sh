#!/usr/bin/env bash
# The math bench with the teacher behind `dotnet compress serve` on 127.0.0.1 (issue 15): the same data and teacher as
# run.sh, then in one run the local-file student (math-student, the teacher's full distribution) and the served one
# (math-student-served, the teacher's top_logprobs over HTTP), and the server's own counts. Reuses run.sh's out/data and
# out/models/math-teacher when they are there (SKIP_TEACHER=1 requires them).
# Usage: bench/GenerativeDistill/run-served.sh   (THREADS=2 by default; NO_BUILD=1 skips the Release builds)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=${THREADS:-2}
out=$here/out
data=$out/data
port=8123
mkdir -p "$out/reports" "$out/logs"

# shellcheck source=common.sh
source "$here/common.sh"
release_cli data

machine_header "$out/served-machine.txt"

start_load_sampler "$out/served-load.txt"

if [[ ! -f $data/pool.jsonl ]]; then
  make_math_data
fi
(cd "$data" && sha256sum teacher-train.jsonl student-train.jsonl pool.jsonl validation.jsonl test.jsonl) | tee "$out/served-data.txt"
if [[ ! -f $out/models/math-teacher/model.onnx ]]; then
  run_recipe math-teacher
fi

# The local-file student, without the baseline gate's file when run.sh's labels-only run is not there.
if [[ ! -f $here/math-labels-only.baseline.json ]]; then
  sed '/baseline/d' "$here/math-student.compress.yaml" > "$here/math-student-local.compress.yaml"
else
  cp "$here/math-student.compress.yaml" "$here/math-student-local.compress.yaml"
fi
sed -i 's/outputs: { model: math-student.onnx/outputs: { model: math-student-local.onnx/' "$here/math-student-local.compress.yaml"
local_rc=0
run_recipe math-student-local || local_rc=$?

start_server "$out/models/math-teacher" "$port"
served_rc=0
run_recipe math-student-served || served_rc=$?
stop_server "$port" "$out/served-stats.json"
rm -f "$here/math-student-local.compress.yaml"
python3 "$here/summarize.py" "$out" served | tee "$out/served-summary.md"
echo "math-student-local exit $local_rc, math-student-served exit $served_rc"
