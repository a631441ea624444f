#!/usr/bin/env bash
# Run every benchmark (`make bench`). One line per bench script; each prints its ratios.
# Sources nothing secret: benches start their own private servers where they need them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

$PY bench/vault_bootstrap_bench.py --rounds 5
$PY bench/vault_bootstrap_scale.py --apps 300 --sequential
$PY bench/sealkit_tree.py --secrets 1000 --repeat 3
$PY bench/sealkit_cold.py --rounds 40
$PY bench/controller_bench.py --n 1000 --rss-n 10000
$PY bench/controller_startup.py --n 1000 --rss-n 10000 --rounds 3
$PY bench/sealkit_cluster.py --rounds 20
$PY bench/keyops_bench.py --secrets 1000 --kubeseal-sample 100
$PY bench/node_bench.py --pods 10
