# What run.sh and run-mail.sh share (sourced, not run): the load sampler and run_recipe. Expects here, out, cli and
# threads to be set by the caller.

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
