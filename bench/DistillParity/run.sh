#!/usr/bin/env bash
# Runs both recipes with our engine, then the independent PyTorch reference on the same teacher logits.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/../.."
dotnet build "$repo/src/ModelCompression.Cli" -c Release -v q -nologo
cli="$repo/src/ModelCompression.Cli/bin/Release/net10.0/dotnet-compress.dll"
for recipe in distill-64 distill-256; do
  /usr/bin/time -f "$recipe: %e s, max RSS %M KB" dotnet "$cli" run "$here/$recipe.compress.yaml" --cache "$here/.compress" --output "$here/out"
done
logits="$(ls "$here"/.compress/teacher-logits-*/logits.bin | head -1)"
/usr/bin/time -f "pytorch reference: %e s, max RSS %M KB" /usr/bin/python3 "$here/reference.py" "$logits" 1
