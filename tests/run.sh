#!/usr/bin/env bash
# Build and test lfpool in every configuration that checks something the
# others do not:
#
#   native        host compiler, debugoptimized; also builds lfp-bench
#   asan          AddressSanitizer + UndefinedBehaviorSanitizer (leaks included)
#   tsan          ThreadSanitizer on the generic C11 atomics backend; also
#                 builds lfp-bench for its ring tests
#   aarch64-llsc  Armv8.0 cross build under qemu-user: the LDAXP/STLXP path
#   aarch64-lse   Armv8.1 cross build under qemu-user: the CASP path
#   valgrind      native build with -Dvalgrind=enabled: only the 'valgrind'
#                 suite, memcheck's reports of pool blocks
#   model         tests/model/run.sh: spin checks the Promela models of the
#                 stack, of slab release and of waiting for blocks in flight
#                 exhaustively (and that the variants without the tag, the
#                 grace period or each waiting rule fail)
#   fuzz          tests/fuzz/run.sh: the libFuzzer harness (clang-14) replays
#                 its corpus and fuzzes the API for LFP_FUZZ_SECONDS (60)
#
# Usage: bash tests/run.sh [CONFIG...]     (default: all eight)
#
# Every selected configuration runs even when an earlier one fails. The last
# line is "N passed, N failed" over all of them; the exit status is non-zero
# when anything failed. A configuration that does not configure or build
# counts as one failure.
#
# Environment:
#   LFP_BUILD_ROOT    where the build directories go (default: build-ci/)
#   LFP_SKIP_SETUP=1  do not run .ci/setup.sh (packages already installed)
#   LFP_TEST_TIMEOUT  wall-clock limit in seconds for each 'meson test' run
#   LFP_STRESS_SCALE  passed to the tests; qemu and TSan runs default to 0.25
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_root=${LFP_BUILD_ROOT:-$root/build-ci}
all_configs=(native asan tsan aarch64-llsc aarch64-lse valgrind model fuzz)

usage() {
    echo "usage: bash tests/run.sh [${all_configs[*]}]..." >&2
    exit 2
}

configs=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) sed -n '2,26s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        native|asan|tsan|aarch64-llsc|aarch64-lse|valgrind|model|fuzz) configs+=("$arg") ;;
        *) echo "tests/run.sh: unknown configuration '$arg'" >&2; usage ;;
    esac
done
[ ${#configs[@]} -gt 0 ] || configs=("${all_configs[@]}")

if [ "${LFP_SKIP_SETUP:-0}" != 1 ]; then
    sh "$root/.ci/setup.sh" test
fi

# Per configuration: meson setup options, extra 'meson test' options, and
# environment for the test run (set in a subshell, so nothing leaks into the
# next configuration).
setup_args() {
    case "$1" in
        native) echo "-Dbuildtype=debugoptimized" ;;
        asan) echo "-Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled" ;;
        tsan) echo "-Dbuildtype=debugoptimized -Db_sanitize=thread -Darch=generic" ;;
        aarch64-llsc) echo "-Dbuildtype=debugoptimized -Dbench=disabled --cross-file $root/cross/aarch64-linux-gnu.txt" ;;
        aarch64-lse) echo "-Dbuildtype=debugoptimized -Dbench=disabled --cross-file $root/cross/aarch64-linux-gnu-lse.txt" ;;
        valgrind) echo "-Dbuildtype=debugoptimized -Dvalgrind=enabled -Dbench=disabled" ;;
    esac
}
test_args() {
    case "$1" in
        asan) echo "--timeout-multiplier 2" ;;
        tsan|aarch64-llsc|aarch64-lse) echo "--timeout-multiplier 4" ;;
        valgrind) echo "--suite valgrind" ;;
    esac
}
test_env() {
    case "$1" in
        asan)
            export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
            export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
            ;;
        tsan)
            export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
            export LFP_STRESS_SCALE=${LFP_STRESS_SCALE:-0.25}
            ;;
        aarch64-llsc|aarch64-lse)
            export LFP_STRESS_SCALE=${LFP_STRESS_SCALE:-0.25}
            ;;
    esac
}

# The sanitizers' shadow memory of GCC 12 and clang 14 does not fit every
# address space layout: with more than 28 bits of mmap randomisation (the
# default of some distributions' newer kernels) TSan aborts with "unexpected
# memory mapping" and ASan can hang. Running without address randomisation
# avoids that where the kernel lets us.
sanitizer_wrapper() {
    local bits
    bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
    if [ "$bits" -gt 28 ] && setarch "$(uname -m)" -R true 2>/dev/null; then
        echo "setarch $(uname -m) -R"
    fi
}

configure() {
    local dir=$1 name=$2
    # shellcheck disable=SC2046  # the option strings are split on purpose
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$dir" "$root" $(setup_args "$name") && return 0
        echo "tests/run.sh: reconfiguring $dir failed; starting it afresh"
    fi
    rm -rf "$dir"
    # shellcheck disable=SC2046
    meson setup "$dir" "$root" $(setup_args "$name")
}

# Read meson test's closing summary ("Ok:   N" ...) from a log; prints
# "passed failed", or nothing when there is no summary.
parse_summary() {
    awk '
        /^Ok:/              { ok = $2; seen = 1 }
        /^Expected Fail:/   { xf = $3 }
        /^Fail:/            { f = $2 }
        /^Unexpected Pass:/ { up = $3 }
        /^Timeout:/         { to = $2 }
        END { if (seen) print ok + xf, f + up + to }
    ' "$1"
}

declare -A passed failed note
total_passed=0
total_failed=0

for name in "${configs[@]}"; do
    dir=$build_root/$name
    log=$build_root/$name.log
    mkdir -p "$build_root"
    echo
    echo "==== $name ($dir)"
    passed[$name]=0
    failed[$name]=0
    note[$name]=""

    if [ "$name" = model ] || [ "$name" = fuzz ]; then
        # A script of its own that ends with "N passed, N failed".
        set +e
        bash "$root/tests/$name/run.sh" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        set -e
        counts=$(awk '/^[0-9]+ passed, [0-9]+ failed$/ { p = $1; f = $3 } END { if (p != "") print p, f }' "$log")
        if [ -n "$counts" ]; then
            read -r "passed[$name]" "failed[$name]" <<< "$counts"
        fi
        if [ "$rc" -ne 0 ] && [ "${failed[$name]}" -eq 0 ]; then
            failed[$name]=1; note[$name]="exited with status $rc"
        fi
    elif ! configure "$dir" "$name"; then
        failed[$name]=1; note[$name]="configure failed"
    elif ! meson compile -C "$dir"; then
        failed[$name]=1; note[$name]="build failed"
    else
        set +e
        (
            test_env "$name"
            limit=()
            [ -n "${LFP_TEST_TIMEOUT:-}" ] && limit=(timeout --kill-after=30 "$LFP_TEST_TIMEOUT")
            wrapper=()
            case "$name" in
                asan|tsan) read -r -a wrapper <<< "$(sanitizer_wrapper)" ;;
            esac
            # shellcheck disable=SC2046
            "${limit[@]}" "${wrapper[@]}" meson test -C "$dir" --print-errorlogs \
                --num-processes 2 $(test_args "$name")
        ) 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        set -e
        counts=$(parse_summary "$log")
        if [ -n "$counts" ]; then
            read -r "passed[$name]" "failed[$name]" <<< "$counts"
        fi
        # A run that was cut short, or failed in a way the summary does
        # not count, still fails its configuration.
        if [ "$rc" -ne 0 ] && [ "${failed[$name]}" -eq 0 ]; then
            failed[$name]=1
        fi
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            note[$name]="stopped after ${LFP_TEST_TIMEOUT}s"
        elif [ "$rc" -ne 0 ] && [ -z "$counts" ]; then
            note[$name]="meson test exited with status $rc"
        fi
    fi
    total_passed=$((total_passed + passed[$name]))
    total_failed=$((total_failed + failed[$name]))
done

echo
echo "==== summary"
for name in "${configs[@]}"; do
    printf '%-13s %4d passed, %4d failed%s\n' "$name" "${passed[$name]}" \
        "${failed[$name]}" "${note[$name]:+  (${note[$name]})}"
done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
