#!/usr/bin/env bash
# Packs ModelCompression.Build from this repository into artifacts/packages, then builds and runs the sample:
# the build distils teacher/model.onnx into a small int8 generative student (math.compress.yaml) and the app answers
# the test problems with it through ONNX Runtime GenAI.
#
# The data (data/*.jsonl, committed) was written by the repository's generator, from the repository root:
#   dotnet build bench/GenerativeData
#   dotnet bench/GenerativeData/bin/Debug/net10.0/GenerativeData.dll math --out samples/GenerativeMath/data \
#     --seed 1 --difficulty 1 --train 300 --pool 1500 --validation 100 --test 200
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dotnet pack "$repo/src/ModelCompression.Build" -c Release -v:q -nologo
# The package keeps version 1.0.0 while it is developed here: drop any older copy of it from the NuGet cache
# (only this package; libtorch and the rest stay) so the freshly packed one is used.
rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/modelcompression.build"
dotnet build "$here" -c Release -nologo
# ONNX Runtime (under GenAI) records telemetry on Linux unless this is set before it starts.
ORT_DISABLE_TELEMETRY=1 dotnet run --project "$here" -c Release --no-build
