#!/usr/bin/env bash
# Install what `make test` / `make demo` need, idempotently; fast when done:
#   1. Debian packages: PostgreSQL server, iproute2 (`ip`, for the node's
#      network namespace and veth; devstack/nodenet.py) and python3-venv, only when missing;
#   2. the Python venv `.venv` (pip install -e '.[controller,vault,dev]'),
#      reinstalled only when pyproject.toml changed (stamp file);
#   3. the Go-built binaries (etcd, the Kubernetes control plane and node
#      commands, containerd, CoreDNS, Helm, kubeseal) via
#      devstack/build-binaries.sh, cached outside the repo;
#   4. the node's images (Debian python base via debootstrap, the project's
#      Dockerfile via buildah, pause, CoreDNS), cached by content.
# Without Go the stack tests skip (warning here); under CI=true that is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }
in_ci() { [[ "${CI:-}" == "true" || "${REQUIRE_TESTPLANE:-}" == "1" ]]; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root (or sudo) to run: $*"; return 1
  fi
}

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not found: install $* yourself"; return 1
  fi
  if [[ $apt_updated == 0 ]]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# 1. Debian packages ---------------------------------------------------------
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  # Debian's package also creates the unprivileged `postgres` user, which the
  # stack runs PostgreSQL as when we are root (initdb refuses to run as root).
  apt_install postgresql
fi
if ! command -v ip >/dev/null 2>&1 && [[ ! -x /usr/sbin/ip && ! -x /sbin/ip ]]; then
  # `ip` link/addr/route: the node's veth and pod network (devstack/nodenet.py).
  apt_install iproute2
fi
# The node: runc and the CNI plugins run pods; nftables holds kube-proxy's rules
# and the node's guard (inside the node's own network namespace); buildah builds
# images from the Dockerfile without a daemon; debootstrap makes the base.
node_pkgs=()
[[ -x /usr/sbin/runc ]] || node_pkgs+=(runc)
[[ -x /usr/lib/cni/ptp ]] || node_pkgs+=(containernetworking-plugins)
[[ -x /usr/sbin/nft ]] || node_pkgs+=(nftables)
command -v buildah >/dev/null 2>&1 || node_pkgs+=(buildah)
command -v debootstrap >/dev/null 2>&1 || node_pkgs+=(debootstrap)
command -v gcc >/dev/null 2>&1 || node_pkgs+=(gcc libc6-dev)
# Argo CD's cache (devstack/argocd.py) and its Git server's `git http-backend`.
command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]] || node_pkgs+=(redis-server)
command -v git >/dev/null 2>&1 || node_pkgs+=(git)
if ((${#node_pkgs[@]})); then apt_install "${node_pkgs[@]}"; fi

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then apt_install python3 python3-venv; fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  log "$PYTHON is older than 3.11; set PYTHON=python3.11 (or newer)"; exit 1
fi

# 2. Python venv -------------------------------------------------------------
stamp=.venv/.sealkit-bootstrap-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  if [[ ! -x .venv/bin/python ]]; then
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then apt_install python3-venv; fi
    log "creating .venv"
    "$PYTHON" -m venv .venv
  fi
  log "installing sealkit[controller,vault,dev] into .venv (log: .venv/pip-install.log)"
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e '.[controller,vault,dev]'; } >.venv/pip-install.log 2>&1
  then
    tail -n 40 .venv/pip-install.log >&2; log "pip install failed"; exit 1
  fi
  echo "$want" >"$stamp"
fi

# 3. Go-built binaries --------------------------------------------------------
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if command -v go >/dev/null 2>&1; then
  # The Debian base (debootstrap: network and dpkg bound, ~6 min cold) builds
  # beside the Go builds (CPU bound); both are no-ops once cached.
  base_pid=""
  if [[ $(id -u) -eq 0 ]]; then
    bash devstack/images/build-base.sh >.venv/build-base.log 2>&1 & base_pid=$!
  fi
  bash devstack/build-binaries.sh all
  if [[ -n $base_pid ]] && ! wait "$base_pid"; then
    tail -n 20 .venv/build-base.log >&2; log "building the Debian base image failed"; exit 1
  fi
  # 4. the node's images (needs the Go-built CoreDNS and the k8s module source).
  if [[ $(id -u) -eq 0 ]]; then
    .venv/bin/python -m devstack.images --demo
  elif in_ci; then
    log "ERROR: the node needs root (namespaces, cgroups, image builds)"; exit 1
  fi
elif in_ci; then
  log "ERROR: go not found; CI needs Go 1.26.x to build the control plane"; exit 1
else
  log "WARNING: go not found; the Kubernetes control plane and kubeseal cannot be built,"
  log "         so tests that need them will be skipped (install Go 1.26.x to run them)"
fi
