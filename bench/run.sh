#!/usr/bin/env bash
# Build lfp-bench in release mode and run it; arguments go to lfp-bench:
#
#   bash bench/run.sh
#   bash bench/run.sh --json results.json --plot results.svg
#
# Installs the peer allocators (jemalloc, mimalloc, tcmalloc) and gnuplot
# first unless LFP_SKIP_SETUP=1. The build goes to build-bench/ at the top of
# the repository; relative paths in the arguments are taken from the
# directory the command is run in.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-bench
opts=(-Dbuildtype=release -Dtests=false)

if [ "${LFP_SKIP_SETUP:-0}" != 1 ]; then
    sh "$root/.ci/setup.sh" bench
fi

if [ -f "$build/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$build" "$root" "${opts[@]}" ||
        { rm -rf "$build"; meson setup "$build" "$root" "${opts[@]}"; }
else
    rm -rf "$build"
    meson setup "$build" "$root" "${opts[@]}"
fi
meson compile -C "$build"
exec "$build/bench/lfp-bench" "$@"
