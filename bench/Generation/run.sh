#!/usr/bin/env bash
# Generation throughput with and without the KV cache (issue 14): makes an untrained decoder with the fixture script
# (Debian's python3-torch; nothing is committed) and times bench/ModelCompression.Bench.Generation on it.
# Usage: bench/Generation/run.sh [layers width heads positions] [-- bench options, e.g. --rounds 5 --threads 2]
set -euo pipefail
cd "$(dirname "$0")/../.."
layers=${1:-4}; width=${2:-256}; heads=${3:-4}; positions=${4:-256}
shift $(( $# < 4 ? $# : 4 )) || true
[[ "${1:-}" == "--" ]] && shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 tests/fixtures/decoder/make_decoder_fixture.py --bench "$dir" --layers "$layers" --width "$width" --heads "$heads" --positions "$positions" 2>&1 | grep '^wrote'
dotnet run -c Release --project bench/ModelCompression.Bench.Generation -- --model "$dir/decoder.onnx" "$@"
