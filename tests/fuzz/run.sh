#!/usr/bin/env bash
# Build the API fuzzer (tests/fuzz/fuzz_api.c, with the library's sources)
# with clang-14, libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer,
# and run two checks:
#
#   corpus replay  every seed in tests/fuzz/corpus/ runs once and passes;
#   checked replay the same with LFP_CHECKED=1: every pool in checked mode;
#   timed fuzzing  libFuzzer for LFP_FUZZ_SECONDS seconds, starting from a
#                  copy of the corpus (nothing is written to the repository).
#
# Usage: bash tests/fuzz/run.sh
#
# The last line is "N passed, N failed"; the exit status is non-zero when a
# check failed, or when the fuzzer cannot be built (no clang-14, or no
# libFuzzer runtime). A failing input is kept in the work directory, whose
# path is printed; replay it with `<work>/fuzz_api <input>`, or with
# FUZZ_API_TRACE=1 in the environment to see each step.
#
# Environment:
#   LFP_FUZZ_SECONDS  fuzzing time in seconds (default 60)
#   LFP_FUZZ_CC       the compiler (default clang-14)
#   LFP_FUZZ_ARGS     more libFuzzer options for the timed run
#   LFP_FUZZ_CFLAGS   more compiler options, e.g. -fno-sanitize=alignment to
#                     look past a known finding
#   LFP_FUZZ_KEEP=1   keep the work directory also when everything passed
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cc=${LFP_FUZZ_CC:-clang-14}
seconds=${LFP_FUZZ_SECONDS:-60}
corpus=$root/tests/fuzz/corpus

fail_setup() {
    echo "tests/fuzz/run.sh: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

command -v "$cc" >/dev/null 2>&1 ||
    fail_setup "$cc not found; install clang-14 and libclang-rt-14-dev (libFuzzer)"
case "$seconds" in
    ''|*[!0-9]*) fail_setup "LFP_FUZZ_SECONDS must be a whole number of seconds" ;;
esac
[ -d "$corpus" ] || fail_setup "no seed corpus at $corpus"

work=$(mktemp -d "${TMPDIR:-/tmp}/lfp-fuzz.XXXXXX") || fail_setup "mktemp failed"

# libFuzzer's runtime comes with libclang-rt-14-dev, not with clang itself.
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    > "$work/probe.c"
if ! "$cc" -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" >"$work/probe.log" 2>&1; then
    cat "$work/probe.log" >&2
    rm -rf "$work"
    fail_setup "$cc cannot link -fsanitize=fuzzer; install libclang-rt-14-dev (libFuzzer)"
fi

# The atomics backend meson's -Darch=auto picks for this machine.
arch_flags=()
arch_libs=()
case "$(uname -m)" in
    x86_64) arch_flags=(-Iarch/x86_64 -mcx16) ;;
    aarch64) arch_flags=(-Iarch/aarch64) ;;
    *) arch_flags=(-Iarch/generic); arch_libs=(-latomic) ;;
esac
if urcu_libs=$(pkg-config --libs liburcu-bp 2>/dev/null); then
    read -r -a urcu <<< "$urcu_libs"
else
    urcu=(-lurcu-bp -lurcu-common)
fi

read -r -a user_cflags <<< "${LFP_FUZZ_CFLAGS:-}"

echo "==== build ($cc, libFuzzer + ASan + UBSan) in $work"
(
    cd "$root" &&
    "$cc" -std=c11 -D_GNU_SOURCE -g -O1 \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -Wall -Wextra "${user_cflags[@]}" \
        -Iinclude -Iarch "${arch_flags[@]}" -Isrc \
        tests/fuzz/fuzz_api.c src/*.c \
        -o "$work/fuzz_api" "${urcu[@]}" -pthread "${arch_libs[@]}"
) || { echo "tests/fuzz/run.sh: build failed; work directory $work" >&2
       echo "0 passed, 1 failed"; exit 1; }

# The sanitizers' shadow memory does not fit every address space layout
# (see tests/run.sh): run without address randomisation where allowed.
wrapper=()
bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
if [ "$bits" -gt 28 ] && setarch "$(uname -m)" -R true 2>/dev/null; then
    wrapper=(setarch "$(uname -m)" -R)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

passed=0
failed=0
results=()

# 1, 2. Corpus replay: each seed once, as its own run; then again with
# every pool in checked mode.
mkdir -p "$work/seeds" "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/seeds/"
cp "$corpus"/* "$work/corpus/"
nseeds=$(find "$work/seeds" -type f | wc -l)
for mode in plain checked; do
    name="corpus replay"
    env=()
    if [ "$mode" = checked ]; then
        name="checked replay"
        env=(env LFP_CHECKED=1)
    fi
    echo
    echo "==== $name ($corpus)"
    if "${env[@]}" "${wrapper[@]}" "$work/fuzz_api" -rss_limit_mb=2048 -timeout=60 \
            -artifact_prefix="$work/artifacts/$mode-" "$work"/seeds/* \
            > "$work/replay-$mode.log" 2>&1; then
        passed=$((passed + 1))
        results+=("ok    $name: $nseeds inputs")
    else
        failed=$((failed + 1))
        tail -n 40 "$work/replay-$mode.log"
        results+=("FAIL  $name (log: $work/replay-$mode.log)")
    fi
done

# 3. Timed fuzzing over a copy of the corpus.
echo
echo "==== fuzzing for ${seconds}s"
read -r -a extra <<< "${LFP_FUZZ_ARGS:-}"
if "${wrapper[@]}" "$work/fuzz_api" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -timeout=60 -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "${extra[@]}" "$work/corpus" \
        > "$work/fuzz.log" 2>&1; then
    passed=$((passed + 1))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -n 1)
    results+=("ok    timed fuzzing: ${seconds}s, ${execs:-?} inputs run${cov:+, $cov}")
    tail -n 12 "$work/fuzz.log"
else
    failed=$((failed + 1))
    tail -n 60 "$work/fuzz.log"
    results+=("FAIL  timed fuzzing (log: $work/fuzz.log)")
fi

for f in "$work"/artifacts/*; do
    [ -f "$f" ] || continue
    echo
    echo "failing input $f ($(wc -c < "$f") bytes):"
    od -A d -t x1 "$f" | head -n 20
done

echo
echo "==== summary"
for r in "${results[@]}"; do
    echo "$r"
done
if [ "$failed" -ne 0 ] || [ "${LFP_FUZZ_KEEP:-0}" = 1 ]; then
    echo "work directory kept: $work"
else
    rm -rf "$work"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
