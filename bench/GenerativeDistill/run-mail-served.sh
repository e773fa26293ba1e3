#!/usr/bin/env bash
# The e-mail subject bench with the teacher behind `dotnet compress serve` on 127.0.0.1 (issue 15): run-mail.sh's data
# and teacher (out/mail-data, out/models/mail-teacher: run it first), then in one run the local-file student
# (mail-student), the served one (mail-student-served) and the served one learning its top_logprobs
# (mail-student-served-tokens), and the server's own counts.
# Usage: bench/GenerativeDistill/run-mail-served.sh   (THREADS=2 by default; NO_BUILD=1 skips the Release build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=${THREADS:-2}
out=$here/out
port=8125
mkdir -p "$out/reports" "$out/logs"
if [[ ! -f $out/models/mail-teacher/model.onnx || ! -f $out/mail-data/pool.jsonl ]]; then
  echo "run bench/GenerativeDistill/run-mail.sh first: it writes the data and trains the teacher" >&2
  exit 1
fi

# shellcheck source=common.sh
source "$here/common.sh"
release_cli
machine_header "$out/mail-served-machine.txt"

start_load_sampler "$out/mail-served-load.txt"

# A student that misses a gate is still reported (the e-mail premise does not hold yet: see bench/README.md).
local_rc=0
run_recipe mail-student || local_rc=$?
start_server "$out/models/mail-teacher" "$port"
served_rc=0
run_recipe mail-student-served || served_rc=$?
# The same served teacher's top_logprobs, token by token (its answers come from the answer cache: nothing is asked
# again but the one request that differs, with logprobs).
tokens_rc=0
run_recipe mail-student-served-tokens || tokens_rc=$?
stop_server "$port" "$out/mail-served-stats.json"
python3 "$here/summarize.py" "$out" mail-served | tee "$out/mail-served-summary.md"
echo "mail-student exit $local_rc, mail-student-served exit $served_rc, mail-student-served-tokens exit $tokens_rc"
