#!/bin/sh
# Install the Debian 12 packages lfpool needs; installs only what is missing,
# so running it again is a no-op.
#
#   sh .ci/setup.sh          build dependencies
#   sh .ci/setup.sh bench    ... plus the peer allocators and gnuplot for lfp-bench
#   sh .ci/setup.sh test     ... plus clang, valgrind, spin and the AArch64 cross toolchain,
#                            qemu-user and arm64 liburcu (multiarch) for tests/run.sh
#
# Set LFP_SETUP_DRY_RUN=1 to print the commands instead of running them.
set -eu

base_pkgs="meson ninja-build pkg-config gcc libc6-dev liburcu-dev"
bench_pkgs="libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev gnuplot-nox"
test_pkgs="clang-14 libclang-rt-14-dev valgrind spin gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user liburcu-dev:arm64"

die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

want_bench=0
want_test=0
for arg in "$@"; do
    case "$arg" in
        bench) want_bench=1 ;;
        test) want_test=1 ;;
        all) want_bench=1; want_test=1 ;;
        -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (expected: bench, test or all)" ;;
    esac
done

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "this script needs a Debian-based system (dpkg and apt-get); install by hand: $base_pkgs"
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    die "not running as root and sudo is not installed: run this script as root"
fi

run() {
    printf '+ %s\n' "$*"
    if [ "${LFP_SETUP_DRY_RUN:-0}" != 1 ]; then
        "$@"
    fi
}

pkgs=$base_pkgs
[ "$want_bench" -eq 1 ] && pkgs="$pkgs $bench_pkgs"
[ "$want_test" -eq 1 ] && pkgs="$pkgs $test_pkgs"

native=$(dpkg --print-architecture)

# arm64 packages (liburcu-dev:arm64) need arm64 enabled in dpkg first; the
# Debian 12 default sources (deb.debian.org) serve arm64 as well.
if [ "$want_test" -eq 1 ] && [ "$native" != arm64 ] &&
   ! dpkg --print-foreign-architectures | grep -qx arm64; then
    run $as_root dpkg --add-architecture arm64
fi

# Installed means: for the architecture asked for (pkg:arch, else the native
# one) or for "all". A bare name would also match another architecture's
# copy of a multiarch package.
installed() {
    case "$1" in
        *:*) arch=${1#*:} ;;
        *) arch=$native ;;
    esac
    dpkg-query -W -f='${Architecture} ${Status}\n' "${1%%:*}" 2>/dev/null |
        grep -qx -e "$arch install ok installed" -e "all install ok installed"
}

missing=""
for p in $pkgs; do
    installed "$p" || missing="$missing $p"
done

if [ -z "$missing" ]; then
    echo "setup.sh: all packages present: $pkgs"
    exit 0
fi

echo "setup.sh: installing:$missing"
run $as_root apt-get update
# shellcheck disable=SC2086  # word splitting of the package list is intended
run $as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends $missing
