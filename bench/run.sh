#!/usr/bin/env bash
# Run every benchmark (`make bench`). One line per bench script; each prints its ratios.
# Sources nothing secret: benches start their own private servers where they need them.
#
# `bench/run.sh --quick` (`make bench-quick`, and tests/bench/test_bench_quick.py under
# `make test`): every script with --quick: tiny sizes, one or few rounds, on the running stack
# where a script needs one. It checks only that each bench runs and computes its ratios (a
# script exits non-zero otherwise); the figures themselves mean nothing. All scripts run; the
# run fails at the end if any failed. Benches that use the running stack find it in .devstack/, or
# in $SEALKIT_BENCH_STACK_DIR (the test sets it to the session's stack).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; fi
FAILED=()
RAN=" "

# bench SCRIPT [FULL-RUN ARGS...]: the full arguments, or --quick alone.
bench() {
    local script=$1
    shift
    local args=("$@")
    if ((QUICK)); then
        [[ "$RAN" == *" $script "* ]] && return 0  # one quick run per script
        args=(--quick)
    fi
    RAN+="$script "
    echo "== $script ${args[*]}"
    local start=$SECONDS
    if ! $PY "bench/$script" "${args[@]}"; then
        FAILED+=("$script")
        echo "== $script FAILED"
    fi
    echo "== $script: $((SECONDS - start)) s"
}

bench vault_bootstrap_bench.py --rounds 5
bench vault_bootstrap_scale.py --apps 300 --sequential
bench sealkit_tree.py --secrets 1000 --repeat 3
bench sealkit_tree.py --secrets 10000 --repeat 2 --kubeseal-sample 100 --rss-sizes 1000,10000
bench sealkit_cold.py --rounds 40
bench controller_bench.py --n 1000 --rss-n 10000
bench controller_startup.py --baseline-ref 6a58b2e --n 1000 --rss-n 10000 --rounds 3
bench controller_vs_upstream.py --budget 900
bench sealkit_cluster.py --rounds 20
bench keyops_bench.py --secrets 1000 --kubeseal-sample 100
bench node_bench.py --pods 10

if ((${#FAILED[@]})); then
    echo "bench/run.sh: FAILED: ${FAILED[*]}" >&2
    exit 1
fi
echo "bench/run.sh: all benchmarks ran"
