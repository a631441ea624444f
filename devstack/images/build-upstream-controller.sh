#!/usr/bin/env bash
# Upstream's sealed-secrets controller as an OCI image archive, for the migration tests
# (tests/deploy/test_migration.py install upstream's own chart with it). The static binary
# from `build-binaries.sh upstream-controller` on an empty base, as upstream ships it
# (distroless static): /controller, also on PATH (the chart's command is `controller`), uid 1001.
# Prints the archive's path. Idempotent: reused when the binary has not changed.
set -euo pipefail
CACHE="${SEALKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sealkit}"
VERSION="${KUBESEAL_VERSION:-v0.40.0}"
bin="$CACHE/sealed-secrets-controller-$VERSION/controller"
[[ -x "$bin" ]] || { echo "missing $bin: run devstack/build-binaries.sh upstream-controller" >&2; exit 3; }
sum="$(sha256sum "$bin" | cut -c1-16)"
out="$CACHE/images/sealed-secrets-controller-$VERSION-$sum.tar"
ref="localhost/sealed-secrets-controller:$VERSION"
if [[ -f "$out" ]]; then echo "$out"; exit 0; fi
mkdir -p "$CACHE/images"
work="$(mktemp -d)"
trap 'buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs rm -a >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
b=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
c="$("${b[@]}" from scratch)"
"${b[@]}" copy --chmod 0755 "$c" "$bin" /controller >/dev/null
"${b[@]}" config --env PATH=/ --entrypoint '["/controller"]' --user 1001:1001 \
  --workingdir /tmp --port 8080 --port 8081 "$c"
"${b[@]}" commit -q "$c" "$ref" >/dev/null
"${b[@]}" push -q "$ref" "oci-archive:$out.tmp:$ref" >/dev/null
mv "$out.tmp" "$out"
echo "$out"
