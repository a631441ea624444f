#!/usr/bin/env bash
# `make demo` / `make demo-down`: the welcome-message GitOps walkthrough on the
# local stack. The work is done by scripts/demo.py (see its docstring); this
# wrapper only picks the checkout's venv. `make demo` has already run
# `make bootstrap`, which installs everything (venv, Debian packages, Go-built
# binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [[ ! -x $PY ]]; then
  echo "demo: $PY is missing; run \`make demo\` (it bootstraps) instead of this script" >&2
  exit 1
fi
case "${1:-up}" in
  up) exec "$PY" scripts/demo.py up ;;
  down) exec "$PY" scripts/demo.py down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
