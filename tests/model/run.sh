#!/usr/bin/env bash
# Model-check lfpool's core algorithms with Spin (see tests/model/README.md).
#
#   stack                          the tagged Treiber stack: exhaustive search,
#                                  no assertion may fail
#   stack-notag-finds-aba          without the tag, Spin must find the ABA, and
#                                  the replayed trail must show one: a pop whose
#                                  CAS succeeds although its top was pushed back
#                                  by another process since its snapshot
#   stack-notag-owner-finds-aba    the same, with the conservation checks left
#                                  out: the two-owners assertion alone must fail
#   stack-nowalk-finds-loss        push_chain linking its chain under the first
#                                  node it took back instead of the last: Spin
#                                  must find blocks lost, and the trail must
#                                  show a push_chain that took two or more
#   reclaim                        slab release behind an RCU grace period:
#                                  exhaustive search, no assertion may fail
#   reclaim-nograce-finds-race     without the grace period, Spin must find a pop
#                                  reading the link of a block whose slab was
#                                  unmapped after the pop entered its read-side
#                                  section (HAProxy GH #1275)
#   inbound                        when an allocating thread may give up with
#                                  ENOBUFS while carves and trims have blocks on
#                                  their way to the depot: exhaustive search
#   inbound-{nolanded,nowait,latecount,notrimcount,nostealcount,steallate}-finds-loss
#                                  each rule of lfp_depot_take and lfp_carve
#                                  left out in turn: Spin must find a thread
#                                  giving up beside a free block, with another
#                                  process acting between its two looks
#   inbound-lookfirst              the same for a pool without a cache, which
#                                  also must not carve or grow while another
#                                  CPU's stack is being moved
#   inbound-lookfirst-noboundretry-finds-loss
#                                  giving up when the carve after the look
#                                  finds the pool carved out: Spin must find
#                                  a run claimed since the look and missed
#   inbound-lookfirst-nolookwait-finds-waste
#                                  carving without waiting for a move: Spin
#                                  must find a carve beside the blocks of a
#                                  stack being moved
#
# Usage: bash tests/model/run.sh [-v] [CHECK...]     (default: all of them)
#   -v   print the counterexample trail of each *-finds-* check
#
# A correct model passes when the search found no error and was complete (no
# depth, memory or time limit cut it short); a variant passes when Spin finds
# the violation it was built to show. One line per check, then
# "N passed, N failed"; the exit status is non-zero when any check failed.
#
# Environment:
#   LFP_MODEL_TIMEOUT  wall-clock limit in seconds for each search (300)
#   LFP_MODEL_MEMLIM   memory limit in MiB for each search (2048)
#   LFP_MODEL_DEFINES  extra spin -D options for every check, to widen the
#                      bounds: e.g. "-DROUNDS1=2" (stack) or "-DTRIMS=3"
#                      (reclaim); see the head of each model
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
all_checks=(stack stack-notag-finds-aba stack-notag-owner-finds-aba
            stack-nowalk-finds-loss
            reclaim reclaim-nograce-finds-race
            inbound inbound-nolanded-finds-loss inbound-nowait-finds-loss
            inbound-latecount-finds-loss inbound-notrimcount-finds-loss
            inbound-nostealcount-finds-loss inbound-steallate-finds-loss
            inbound-lookfirst inbound-lookfirst-noboundretry-finds-loss
            inbound-lookfirst-nolookwait-finds-waste)
timeout_s=${LFP_MODEL_TIMEOUT:-300}
memlim=${LFP_MODEL_MEMLIM:-2048}
read -r -a extra_defines <<< "${LFP_MODEL_DEFINES:-}"
depth=10000

usage() {
    echo "usage: bash tests/model/run.sh [-v] [${all_checks[*]}]..." >&2
    exit 2
}

verbose=0
checks=()
for arg in "$@"; do
    case "$arg" in
        -v) verbose=1 ;;
        -h|--help) sed -n '2,55s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) usage ;;
        *)
            found=0
            for c in "${all_checks[@]}"; do [[ $c == "$arg" ]] && found=1; done
            [[ $found == 1 ]] || { echo "tests/model/run.sh: unknown check '$arg'" >&2; usage; }
            checks+=("$arg")
            ;;
    esac
done
[[ ${#checks[@]} -gt 0 ]] || checks=("${all_checks[@]}")

missing=0
for tool in spin gcc timeout; do
    if ! command -v "$tool" > /dev/null; then
        echo "tests/model/run.sh: '$tool' not found (Debian: apt-get install spin gcc coreutils)" >&2
        missing=1
    fi
done
[[ $missing == 0 ]] || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/lfp-model.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

n_passed=0
n_failed=0

pass() { echo "ok $1: $2"; n_passed=$((n_passed + 1)); }

fail() {
    echo "FAIL $1: $2"
    n_failed=$((n_failed + 1))
    if [[ -n ${3:-} && -f $3 ]]; then
        tail -n 25 "$3" | sed 's/^/    /'
    fi
}

# The trail shows an ABA: some pop's CAS succeeds on {X, tag} after another
# process pushed X back (made X the top again) since that pop's snapshot.
trail_shows_aba() {
    awk '
        function first_of(pair,   a) {
            gsub(/[{}:,]/, " ", pair); split(pair, a, " "); return a[1]
        }
        $2 == "pop:" && $3 == "expects" { want[$1] = first_of($4); back[$1] = 0 }
        ($2 == "push:" || $2 == "pop:") && $3 == "CAS" && $5 == "->" {
            top = first_of($6)
            for (q in want) if (q != $1 && want[q] == top) back[q] = 1
        }
        $2 == "pop:" && $3 == "CAS" && $7 == "claims" {
            if (back[$1] && want[$1] == first_of($4)) aba = 1
        }
        END { exit aba ? 0 : 1 }
    ' "$1"
}

# The trail shows a push_chain that took two or more blocks back from the
# stack before linking its own chain (the splice the variant gets wrong).
trail_shows_long_splice() {
    awk '$2 == "push_chain:" && $3 == "took" && $4 >= 2 { found = 1 }
         END { exit found ? 0 : 1 }' "$1"
}

# The trail shows the release race: the last pop read the link of block X
# while X's slab was unmapped, an unmapping that came after the pop had
# entered its read-side section.
trail_shows_unmapped_read() {
    awk '
        function blocks(range, set,   a, b) {
            gsub(/[()]/, "", range); split(range, a, /\.\./)
            for (b = a[1]; b <= a[2]; b++) set[b] = NR
        }
        $2 == "enters" { entered[$1] = NR }
        $2 == "unmaps" { blocks($6, unmapped) }
        $2 == "maps" { blocks($7, remapped) }
        $2 == "pop:" && $3 == "expects" {
            x = $4; gsub(/[{}:,]/, " ", x); split(x, a, " ")
            reader = $1; block = a[1]; read_at = NR
        }
        END {
            ok = read_at && (block in unmapped) && entered[reader] &&
                 entered[reader] < unmapped[block] && unmapped[block] < read_at &&
                 !(block in remapped && remapped[block] > unmapped[block])
            exit ok ? 0 : 1
        }
    ' "$1"
}

# The trail shows a thread giving up (or, looking first, making more)
# beside a free block while another process acted between its last look at
# inbound and that step, or had taken blocks (a carve, a trim) and not
# landed yet.
trail_shows_missed_block() {
    awk '
        $2 == "looks:" { looker = $1; since = 0 }
        $2 == "carves" || $2 == "takes" { open[$1] = 1 }
        $2 == "lands" { open[$1] = 0 }
        looker != "" && $1 != looker && ($2 == "carves" || $2 == "takes" || $2 == "lands") {
            since = 1
        }
        $1 == looker && ($2 == "gives" || $2 == "makes") {
            d = $5; h = $7; gsub(/,/, "", d)
            busy = since
            for (p in open) if (open[p]) busy = 1
            if (busy && (d > 0 || h > 0)) found = 1
        }
        END { exit found ? 0 : 1 }
    ' "$1"
}

# run_check NAME MODEL EXPECT [SPIN_DEFINE...]
#   EXPECT is "none" (no error, complete search) or an extended regular
#   expression the text of the failed assertion must match.
run_check() {
    local name=$1 model=$2 expect=$3
    shift 3
    set -- "${extra_defines[@]}" "$@"
    local dir=$work/$name
    mkdir -p "$dir"
    cp "$here"/*.pml "$dir"/
    cd "$dir" || return

    if ! spin -a "$@" "$model" > spin.log 2>&1; then
        fail "$name" "spin -a $* $model failed" spin.log
        return
    fi
    local cflags=(-O2 -DSAFETY -DCOLLAPSE "-DMEMLIM=$memlim")
    local panflags=("-m$depth")
    if [[ $expect != none ]]; then
        # Find the shortest counterexample, for a readable trail.
        cflags+=(-DREACH)
        panflags+=(-i)
    fi
    if ! gcc "${cflags[@]}" -o pan pan.c > gcc.log 2>&1; then
        fail "$name" "gcc failed to build pan" gcc.log
        return
    fi

    local t0 t1 rc secs
    t0=$(date +%s.%N)
    timeout "$timeout_s" ./pan "${panflags[@]}" > pan.out 2>&1
    rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

    if [[ $rc == 124 ]]; then
        fail "$name" "search ran past ${timeout_s} s" pan.out
        return
    fi
    local states errors
    states=$(awk '$2 == "states," && $3 == "stored" { print $1; exit }' pan.out)
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out | head -n 1)
    if [[ -z $states || -z $errors ]]; then
        fail "$name" "could not read pan's result (exit status $rc)" pan.out
        return
    fi

    if grep -q -e 'max search depth too small' -e 'reached -DMEMLIM' \
               -e 'out of memory' pan.out; then
        fail "$name" "search cut short by the depth or memory limit" pan.out
        return
    fi

    if [[ $expect == none ]]; then
        if [[ $errors != 0 ]]; then
            fail "$name" "$errors error(s): $(grep -m1 '^pan:' pan.out)" pan.out
        elif grep -q 'Search not completed' pan.out; then
            fail "$name" "search not complete" pan.out
        else
            pass "$name" "$states states, errors: 0, search complete, ${secs} s"
        fi
        return
    fi

    # A variant: the violation must be found, be the one expected, and
    # replay in the simulator.
    if [[ $errors == 0 ]]; then
        fail "$name" "no violation found in $states states: the model cannot show the bug" pan.out
        return
    fi
    spin -t "$@" "$model" > replay.out 2>&1
    if ! grep -q 'Error: assertion violated' replay.out; then
        fail "$name" "the trail does not replay to an assertion violation" replay.out
        return
    fi
    local what
    what=$(sed -n 's/.*text of failed assertion: //p' replay.out)
    if ! [[ $what =~ $expect ]]; then
        fail "$name" "expected a violation of /$expect/, got: $what" replay.out
        return
    fi
    local shape=trail_shows_aba
    [[ $model == reclaim.pml ]] && shape=trail_shows_unmapped_read
    [[ $model == inbound.pml ]] && shape=trail_shows_missed_block
    [[ $name == stack-nowalk-* ]] && shape=trail_shows_long_splice
    if ! "$shape" replay.out; then
        fail "$name" "the trail does not show the expected interleaving" replay.out
        return
    fi
    local steps
    steps=$(sed -n 's/.*trail ends after \([0-9]*\) steps.*/\1/p' replay.out)
    pass "$name" "violation found: $what; shortest trail ${steps} steps, ${states} states, ${secs} s"
    if [[ $verbose == 1 ]]; then
        grep -E '^ *P[0-9]+ |Error:|text of failed' replay.out | sed 's/^ */    /'
    fi
}

for check in "${checks[@]}"; do
    case "$check" in
        stack) run_check stack stack.pml none ;;
        stack-notag-finds-aba)
            run_check "$check" stack.pml 'c_seen|c_walk' -DNOTAG ;;
        stack-notag-owner-finds-aba)
            run_check "$check" stack.pml 'owner\[' -DNOTAG -DNOCONS ;;
        stack-nowalk-finds-loss)
            run_check "$check" stack.pml 'owner\[c_walk\] != me|owner\[c_walk\]!=me' -DNOWALK ;;
        reclaim) run_check reclaim reclaim.pml none ;;
        reclaim-nograce-finds-race)
            run_check "$check" reclaim.pml 'mapped\[' -DNOGRACE ;;
        inbound) run_check inbound inbound.pml none ;;
        inbound-nolanded-finds-loss)
            run_check "$check" inbound.pml 'depot' -DNOLANDED ;;
        inbound-nowait-finds-loss)
            run_check "$check" inbound.pml 'depot' -DNOWAIT ;;
        inbound-latecount-finds-loss)
            run_check "$check" inbound.pml 'depot' -DLATECOUNT ;;
        inbound-notrimcount-finds-loss)
            run_check "$check" inbound.pml 'depot' -DNOTRIMCOUNT ;;
        inbound-nostealcount-finds-loss)
            run_check "$check" inbound.pml 'depot' -DNOSTEALCOUNT ;;
        inbound-steallate-finds-loss)
            run_check "$check" inbound.pml 'depot' -DSTEALLATE ;;
        inbound-lookfirst) run_check "$check" inbound.pml none -DLOOKFIRST ;;
        inbound-lookfirst-noboundretry-finds-loss)
            run_check "$check" inbound.pml 'depot' -DLOOKFIRST -DNOBOUNDRETRY ;;
        inbound-lookfirst-nolookwait-finds-waste)
            run_check "$check" inbound.pml 'mheld' -DLOOKFIRST -DNOLOOKWAIT ;;
    esac
done

echo "$n_passed passed, $n_failed failed"
[[ $n_failed == 0 ]]
