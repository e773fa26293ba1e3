#!/usr/bin/env bash
# Packs ModelCompression.Build from this repository into artifacts/packages, then builds and runs the sample:
# the build distils teacher/teacher.onnx into a small int8 student (fashion.compress.yaml) and the app uses it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dotnet pack "$repo/src/ModelCompression.Build" -c Release -v:q -nologo
# The package keeps version 1.0.0 while it is developed here: drop any older copy of it from the NuGet cache
# (only this package; libtorch and the rest stay) so the freshly packed one is used.
rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/modelcompression.build"
dotnet build "$here" -c Release -nologo
dotnet run --project "$here" -c Release --no-build
