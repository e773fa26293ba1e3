#!/usr/bin/env bash
# The README's test command. On a fresh Debian 12 machine with the .NET 10 SDK it installs, with apt-get, what the
# tests need and the machine lacks, then runs every test of the solution. CI runs exactly this (.ci/run).
#
#   bash build/test.sh                              set up, then run all tests
#   bash build/test.sh --dry-run                    say what would be installed and run; change nothing
#   bash build/test.sh --filter "Category!=Slow"    arguments after the options go to `dotnet test`
#
# Installs only what is missing, so a second run installs nothing. Uses sudo when not run as root.
# The last line is "N passed, N failed, N skipped", summed over every test assembly; the exit status is dotnet test's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dry_run=false
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=true
  shift
fi

fail() {
  echo "build/test.sh: error: $*" >&2
  exit 1
}

# What the tests start or load from the system, each with the Debian package that provides it and why.
# A probe that succeeds means the package (or an equivalent) is already there.
missing=()
need() {
  local package=$1 why=$2
  shift 2
  if "$@" >/dev/null 2>&1; then
    return
  fi
  echo "== missing: ${package} (${why})"
  missing+=("${package}")
}
is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}
# The absolute path on purpose: the tests run Debian's python3, not a pyenv one earlier on PATH.
python_imports() {
  [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c "import $1"
}
has_command() {
  local name
  for name in "$@"; do
    command -v "${name}" && return 0
  done
  return 1
}

command -v dotnet >/dev/null 2>&1 \
  || fail "'dotnet' is not on PATH. Install the .NET 10 SDK (https://dot.net), then run this again."

# Debian's python3-torch puts libtorch 1.13 in the system library path; the engine must load its own libtorch 2.10
# in spite of it (shared/FACTS.md), so the tests run with it installed, as users' machines may have it.
if command -v dpkg-query >/dev/null 2>&1; then
  need python3-torch "system libtorch 1.13 the engine's native loader must not pick up" is_installed python3-torch
else
  need python3-torch "system libtorch 1.13 the engine's native loader must not pick up" false
fi
need python3-numpy "NpyWriterTests read the engine's .npy files back with numpy" python_imports numpy
need chromium "HtmlReportInChromiumTests render report.html in headless Chromium" has_command chromium chromium-browser
need binutils "ElfImageTests check the patched libLibTorchSharp.so with readelf" has_command readelf
need nodejs "the stage cache tests start Azurite, Azure Storage's emulator, an npm package" has_command node nodejs
need npm "installs Azurite (below)" has_command npm

if ((${#missing[@]} > 0)); then
  command -v apt-get >/dev/null 2>&1 \
    || fail "apt-get is not available, so ${missing[*]} cannot be installed here. This script sets up Debian 12; on another system install the equivalents of: ${missing[*]}, then run: dotnet test ModelCompression.sln"
  as_root=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 \
      || fail "installing ${missing[*]} needs root and sudo is not available. As root run: apt-get install -y --no-install-recommends ${missing[*]}"
    echo "== not root: installing with sudo (it may ask for your password)"
    as_root=(sudo)
  fi
  update=("${as_root[@]}" apt-get update -qq)
  install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}")
  if ${dry_run}; then
    echo "== would run: ${update[*]}"
    echo "== would run: ${install[*]}"
  else
    echo "== installing ${missing[*]}"
    "${update[@]}" || fail "apt-get update failed (see above); ${missing[*]} not installed"
    "${install[@]}" >/dev/null || fail "apt-get install ${missing[*]} failed (see above)"
  fi
else
  echo "== everything the tests need is installed"
fi

# Azurite (npm), the Azure Blob Storage emulator the stage cache tests start and stop, in a folder of its own (not the
# system's npm prefix, and ignored by git). AZURITE_PREFIX moves it; the tests look in .tools/azurite by default.
azurite_version=3.37.0
azurite_prefix=${AZURITE_PREFIX:-.tools/azurite}
if [[ -x "${azurite_prefix}/node_modules/.bin/azurite-blob" ]] \
  && grep -q "\"version\": \"${azurite_version}\"" "${azurite_prefix}/node_modules/azurite/package.json" 2>/dev/null; then
  echo "== azurite ${azurite_version} is installed (${azurite_prefix})"
else
  npm_install=(npm install --prefix "${azurite_prefix}" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "azurite@${azurite_version}")
  if ${dry_run}; then
    echo "== would run: ${npm_install[*]}"
  else
    echo "== installing azurite ${azurite_version} into ${azurite_prefix} with npm"
    "${npm_install[@]}" || fail "npm could not install azurite ${azurite_version} (see above); the stage cache tests need it"
  fi
fi

test_command=(dotnet test ModelCompression.sln -nologo "$@")
if ${dry_run}; then
  echo "== would run:$(printf ' %q' "${test_command[@]}")"
  exit 0
fi

echo "==$(printf ' %q' "${test_command[@]}")"
log=$(mktemp)
trap 'rm -f "${log}"' EXIT
set +e
"${test_command[@]}" 2>&1 | tee "${log}"
status=${PIPESTATUS[0]}
set -e

# dotnet test prints one "Failed: a, Passed: b, Skipped: c, Total: d" line per test assembly.
read -r passed failed skipped < <(grep -Eo 'Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "${log}" \
  | awk -F'[:,] *' '{f+=$2; p+=$4; s+=$6} END {print p+0, f+0, s+0}')
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "${status}"
