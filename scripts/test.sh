#!/usr/bin/env bash
# Run the test suite (pytest over tests/, arguments passed through).
# "No tests collected" (pytest exit 5) is a failure: a filter that matches
# nothing must not pass silently.
set -uo pipefail
cd "$(dirname "$0")/.."
# The Vault-API tests run on both servers, OpenBao and HashiCorp Vault (`make bootstrap` builds
# Vault); SEALKIT_VAULT=openbao|vault runs one.
export SEALKIT_VAULT="${SEALKIT_VAULT:-both}"
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
.venv/bin/pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "[test] pytest collected no tests: failing" >&2
  exit 1
fi
exit $rc
