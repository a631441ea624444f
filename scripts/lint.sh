#!/usr/bin/env bash
# The linters CI runs before the tests (.ci/run), and `make lint`:
#   ruff check, ruff format --check, mypy (strict; config in pyproject.toml) and the
#   import-linter contracts (the core imports no edge, the edges do not import each other,
#   private modules stay private).
# Runs every linter, then fails if any failed, so one run shows every finding.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${SEALKIT_VENV:-.venv}/bin
for tool in ruff mypy lint-imports; do
  if [ ! -x "$BIN/$tool" ]; then
    echo "lint: $BIN/$tool is missing: run \`make bootstrap\` (it installs the dev extra)" >&2
    exit 2
  fi
done
status=0
run() {
  echo "--- $*" >&2
  "$@" || status=1
}
run "$BIN/ruff" check .
run "$BIN/ruff" format --check .
run "$BIN/mypy"
run "$BIN/lint-imports"
if [ "$status" -ne 0 ]; then
  echo "lint: FAILED" >&2
fi
exit "$status"
