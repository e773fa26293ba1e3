# What the run*.sh scripts of this folder share (sourced, not run): the Release CLI, the machine header, the math data,
# the load sampler, run_recipe and the served teacher. Expects here, root, out and threads (and data, for
# make_math_data) to be set by the caller; release_cli sets cli.

# Builds the engine's CLI in Release (and, given "data", the data generator) unless NO_BUILD is set; sets cli.
release_cli() {
  if [[ -z ${NO_BUILD:-} ]]; then
    dotnet build -c Release "$root/src/ModelCompression.Cli" -v quiet -nologo
    if [[ ${1:-} == data ]]; then
      dotnet build -c Release "$root/bench/GenerativeData" -v quiet -nologo
    fi
  fi
  cli=(dotnet "$root/src/ModelCompression.Cli/bin/Release/net10.0/dotnet-compress.dll")
}

# Writes the date, commit and CPU of this run to $1 (and shows them).
machine_header() {
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$root" rev-parse --short HEAD)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs usable, threads $threads"
  } | tee "$1"
}

# The math bench's data in $data: one seed, one call, so no prompt is in two files; train.jsonl's first 20,000 lines
# are the teacher's gold, its last 500 the student's (the generator shuffles each split, so the tail is a random part).
make_math_data() {
  dotnet "$root/bench/GenerativeData/bin/Release/net10.0/GenerativeData.dll" math --out "$data" --seed 1 --difficulty 1 \
    --train 20500 --pool 20000 --validation 500 --test 500 | tee "$out/data.txt"
  head -n 20000 "$data/train.jsonl" > "$data/teacher-train.jsonl"
  tail -n 500 "$data/train.jsonl" > "$data/student-train.jsonl"
}

# Samples the load average every 30 seconds into $1 while the recipes run (the machine may be shared).
start_load_sampler() {
  (while true; do echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 30; done) > "$1" &
  sampler=$!
  trap 'kill "$sampler" 2>/dev/null || true' EXIT
}

# Runs one recipe, keeps its log and report, and prints its wall time; returns the CLI's exit code.
run_recipe() {
  local recipe=$1 start rc=0
  start=$(date +%s)
  echo "== $recipe: start $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
  "${cli[@]}" run "$here/$recipe.compress.yaml" --output "$out/models" --cache "$out/cache" --threads "$threads" > "$out/logs/$recipe.log" 2>&1 || rc=$?
  grep -v ' ETA ' "$out/logs/$recipe.log" | tail -n 25
  cp "$out/models/$recipe.report.json" "$out/reports/" 2>/dev/null || true
  echo "== $recipe: exit $rc, $(( $(date +%s) - start )) s wall, end $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
  return "$rc"
}

# Serves the model folder $1 with the engine's CLI on 127.0.0.1:$2 (log in $out/logs/serve.log) and waits until it
# answers; stop_server writes the server's counts to $3 and stops it.
start_server() {
  "${cli[@]}" serve "$1" --port "$2" --threads "$threads" > "$out/logs/serve.log" 2>&1 &
  server=$!
  trap 'kill "$server" "$sampler" 2>/dev/null || true' EXIT
  for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$2/v1/models" > /dev/null && return 0
    sleep 1
  done
  echo "the server on port $2 did not answer within 60 s" >&2
  return 1
}

stop_server() {
  curl -s "http://127.0.0.1:$1/v1/compress/stats" > "$2" || true
  kill "$server" 2>/dev/null || true
}
