#!/usr/bin/env bash
# Runs the README sample's recipe (samples/FashionMnist/fashion.compress.yaml) with the CLI of two checkouts, one
# thread each and an empty cache each, and prints both students' SHA-256: a refactoring that should not change the
# numbers must give the same bytes. Build each checkout's CLI first (dotnet build src/ModelCompression.Cli).
#   bench/SampleBitForBit/run.sh OLD_CHECKOUT NEW_CHECKOUT [RESULTS_DIR]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OLD_CHECKOUT NEW_CHECKOUT [RESULTS_DIR]" >&2; exit 2; }
results="${3:-/tmp/sample-bit-for-bit}"
for tree in "$1" "$2"; do
  name="$(cd "$tree" && git log --format=%h -1)"
  out="$results/$name"
  rm -rf "$out"; mkdir -p "$out"
  ( cd "$tree" && dotnet src/ModelCompression.Cli/bin/Debug/net10.0/dotnet-compress.dll run samples/FashionMnist/fashion.compress.yaml \
      --output "$out/out" --cache "$out/cache" --threads 1 ) > "$out/log.txt" 2>&1
  echo "$name: $(grep '^Summary:' "$out/log.txt")"
  sha256sum "$out/out/fashion.student.onnx"
done
