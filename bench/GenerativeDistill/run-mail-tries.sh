#!/usr/bin/env bash
# Two more tries at the e-mail subject premise (issue 14; bench/README.md, "e-mail subjects, two more tries"): a
# character-level student of the same 1/8 budget (mail-char-*) and the GPT-2 student with up to 3x the steps and early
# stopping (mail-*-long), each after its labels-only reference, whose per-mail ROUGE-L the significance gate reads.
# Uses run-mail.sh's data and teacher: run it first. Usage: bench/GenerativeDistill/run-mail-tries.sh (THREADS=2 by
# default; NO_BUILD=1 skips the Release build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=${THREADS:-2}
out=$here/out
mkdir -p "$out/reports" "$out/logs"
if [[ ! -f $out/models/mail-teacher/model.onnx || ! -f $out/mail-data/pool.jsonl ]]; then
  echo "run bench/GenerativeDistill/run-mail.sh first: it writes the data and trains the teacher" >&2
  exit 1
fi

# shellcheck source=common.sh
source "$here/common.sh"
release_cli
machine_header "$out/mail-tries-machine.txt"
start_load_sampler "$out/mail-tries-load.txt"

# Students that miss a gate are still reported: the premise does not hold here (bench/README.md says why).
for pair in "mail-char-labels-only mail-char-student" "mail-labels-only-long mail-student-long"; do
  read -r reference student <<< "$pair"
  run_recipe "$reference"
  "${cli[@]}" baseline accept "$here/$reference.compress.yaml" --output "$out/models" --cache "$out/cache" | tail -n 1
  run_recipe "$student" || echo "$student exit $?"
done
