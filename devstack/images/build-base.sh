#!/usr/bin/env bash
# The stack's Python base image, made from Debian packages (no image registry
# is reachable here). debootstrap writes a bookworm minbase root with python3
# and pip into the cache; the image's config sets PIP_BREAK_SYSTEM_PACKAGES so
# that the project's Dockerfile, written for python:3.11-slim, runs unchanged
# on it. Idempotent: the cached rootfs is reused (cold: ~6 min).
set -euo pipefail
CACHE="${SEALKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sealkit}"
SUITE="${BASE_SUITE:-bookworm}"
MIRROR="${BASE_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
out="$CACHE/base-$SUITE-python3"
log() { printf '[base] %s\n' "$*" >&2; }

if [[ -f "$out/rootfs.done" ]]; then exit 0; fi
command -v debootstrap >/dev/null || { log "debootstrap not found (apt-get install debootstrap)"; exit 3; }
rm -rf "$out.tmp"; mkdir -p "$out.tmp"
log "debootstrap $SUITE minbase + python3 into $out (cold: ~6 min)"
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
  "$SUITE" "$out.tmp/rootfs" "$MIRROR" >"$out.tmp/debootstrap.log" 2>&1 \
  || { tail -n 20 "$out.tmp/debootstrap.log" >&2; exit 1; }
# Slim it: docs, man pages and apt lists are not needed at run time.
rm -rf "$out.tmp/rootfs"/usr/share/{doc,man,info,locale}/* "$out.tmp/rootfs"/var/lib/apt/lists/* \
  "$out.tmp/rootfs"/var/cache/apt/*.bin "$out.tmp/rootfs"/var/cache/apt/archives/*.deb
touch "$out.tmp/rootfs.done"
rm -rf "$out"; mv "$out.tmp" "$out"
log "base rootfs ready: $(du -sh "$out/rootfs" | cut -f1)"
