#!/usr/bin/env bash
# Build the local stack's Go binaries from the Go module proxy into a cache
# outside the repository, keyed by version. Idempotent: a present binary is
# never rebuilt. The wrapper modules' go.mod/go.sum are committed; when a
# version is bumped, run with REGEN=1 to derive the replace list again from
# k8s.io/kubernetes's own go.mod.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KUBESEAL_VERSION="${KUBESEAL_VERSION:-v0.40.0}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.4.2}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
VAULT_VERSION="${VAULT_VERSION:-v1.21.4}"
# HashiCorp Vault's module zip lacks its nested sdk/ module, and at v1.21.4 (a release-branch tag)
# the in-tree sdk matches no published sdk version, and the proxy serves no pseudo-version of the
# tag's commit (docs/devstack.md). The build takes the sdk Vault's go.mod requires (v0.21.0) and
# adapts Vault's three call sites whose signatures differ (VAULT_PATCH, applied to a copy of
# the module; it touches identity deduplication's activation flag and a transit observation,
# nothing sealkit uses). The binary reports itself as 1.21.4+sealkit.sdk.patch.
VAULT_SDK_VERSION="${VAULT_SDK_VERSION:-v0.21.0}"
VAULT_PATCH="${VAULT_PATCH-$(cd "$(dirname "$0")" && pwd)/go/vault-$VAULT_VERSION-sdk-$VAULT_SDK_VERSION.patch}"
ARGOCD_VERSION="${ARGOCD_VERSION:-v3.6.1}"
# Argo CD v3.6 declares `go 1.27.0`; the go command fetches this toolchain from
# the module proxy. Scoped to the argocd build only (everything else: local go).
ARGOCD_GOTOOLCHAIN="${ARGOCD_GOTOOLCHAIN:-go1.27.4}"
# The control plane and the node's kubelet, scheduler and kube-proxy.
KUBE_CMDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
CACHE="${SEALKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sealkit}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

log() { printf '[build] %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "go not found on PATH; cannot build the control plane"; exit 3
fi

kube_dir="$CACHE/k8s-$KUBE_VERSION"
etcd_dir="$CACHE/etcd-$ETCD_VERSION"
kubeseal_dir="$CACHE/kubeseal-$KUBESEAL_VERSION"
vault_dir="$CACHE/vault-$VAULT_VERSION"

regen_kube() {
  local sv="v0${KUBE_VERSION#v1}"
  local mod="$HERE/go/kube"
  local gomod
  gomod="$(go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@$KUBE_VERSION")"
  (cd "$mod" && rm -f go.mod go.sum && go mod init example.invalid/sealkit/devstack/kube >/dev/null 2>&1 \
    && go mod edit -go=1.26)
  grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
    (cd "$mod" && go mod edit -replace="$m=$m@$sv")
  done
  local c args=()
  for c in $KUBE_CMDS; do args+=("k8s.io/kubernetes/cmd/$c@$KUBE_VERSION"); done
  (cd "$mod" && go get -tool "${args[@]}")
}

regen_etcd() {
  local mod="$HERE/go/etcd"
  (cd "$mod" && rm -f go.mod go.sum && go mod init example.invalid/sealkit/devstack/etcd >/dev/null 2>&1 \
    && go mod edit -go=1.26 && go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
}

build_kube() {
  # One `go build` for all five commands: they share most packages, so one
  # invocation compiles each package once (cold: ~15 min on 2 cores).
  local c missing=0 pkgs=()
  for c in $KUBE_CMDS; do [[ -x "$kube_dir/$c" ]] || missing=1; pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  [[ $missing == 0 ]] && return
  [[ "${REGEN:-0}" == 1 || ! -f "$HERE/go/kube/go.sum" ]] && regen_kube
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  log "building $KUBE_CMDS $KUBE_VERSION (cold: 15-30 min)"
  mkdir -p "$kube_dir.tmp"
  (cd "$HERE/go/kube" && go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$ldf" \
     -o "$kube_dir.tmp/" "${pkgs[@]}")
  rm -rf "$kube_dir"; mv "$kube_dir.tmp" "$kube_dir"
}

build_etcd() {
  if [[ -x "$etcd_dir/etcd" ]]; then return; fi
  [[ "${REGEN:-0}" == 1 || ! -f "$HERE/go/etcd/go.sum" ]] && regen_etcd
  log "building etcd $ETCD_VERSION"
  mkdir -p "$etcd_dir.tmp"
  (cd "$HERE/go/etcd" && go build -trimpath -ldflags "-s -w" -o "$etcd_dir.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$etcd_dir"; mv "$etcd_dir.tmp" "$etcd_dir"
}

build_kubeseal() {
  # The checksum database has no entry for this module path, so `go install
  # ...@tag` cannot verify it. The wrapper's committed go.sum pins its hash
  # instead: verified on every build, trusted once when it was generated.
  if [[ -x "$kubeseal_dir/kubeseal" ]]; then return; fi
  log "building kubeseal $KUBESEAL_VERSION"
  mkdir -p "$kubeseal_dir.tmp"
  (cd "$HERE/go/kubeseal" && go build -trimpath \
     -ldflags "-s -w -X main.VERSION=$KUBESEAL_VERSION" \
     -o "$kubeseal_dir.tmp/kubeseal" github.com/bitnami/sealed-secrets/cmd/kubeseal)
  rm -rf "$kubeseal_dir"; mv "$kubeseal_dir.tmp" "$kubeseal_dir"
}

# Upstream's integration suite (Ginkgo, build tag `integration`) as a test binary, unmodified,
# plus upstream's controller as the reference peer (tests/sealkit/test_upstream_suite.py,
# docs/compatibility.md). Same checksum-db gap as kubeseal: the wrapper's go.sum pins the hash.
build_sealed_secrets_it() {
  local d="$CACHE/sealed-secrets-it-$KUBESEAL_VERSION"
  [[ -x "$d/integration.test" && -x "$d/controller" ]] && return
  log "building sealed-secrets $KUBESEAL_VERSION integration test binary and controller"
  mkdir -p "$d.tmp"
  (cd "$HERE/go/sealed-secrets-it" \
     && go test -c -trimpath -tags integration -ldflags "-s -w" -o "$d.tmp/integration.test" \
          github.com/bitnami/sealed-secrets/integration \
     && go build -trimpath -ldflags "-s -w -X main.VERSION=$KUBESEAL_VERSION" \
          -o "$d.tmp/controller" github.com/bitnami/sealed-secrets/cmd/controller)
  rm -rf "$d"; mv "$d.tmp" "$d"
}

# The node's container runtime. containerd's go.mod has no replace directives,
# so `go install pkg@version` works without a wrapper module; the checksum
# database verifies it. One invocation builds all three commands.
build_containerd() {
  local d="$CACHE/containerd-$CONTAINERD_VERSION"
  [[ -x "$d/containerd" && -x "$d/containerd-shim-runc-v2" && -x "$d/ctr" ]] && return
  log "building containerd, containerd-shim-runc-v2, ctr $CONTAINERD_VERSION (cold: ~6 min)"
  local m=github.com/containerd/containerd/v2
  mkdir -p "$d.tmp"
  GOBIN="$d.tmp" go install -trimpath -tags "no_btrfs no_devmapper no_zfs urfave_cli_no_docs" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "$m/cmd/ctr@$CONTAINERD_VERSION"
  rm -rf "$d"; mv "$d.tmp" "$d"
}

# Cluster DNS for the node: CoreDNS serves cluster.local from the apiserver.
build_coredns() {
  local d="$CACHE/coredns-$COREDNS_VERSION"
  [[ -x "$d/coredns" ]] && return
  log "building coredns $COREDNS_VERSION"
  mkdir -p "$d.tmp"
  GOBIN="$d.tmp" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  rm -rf "$d"; mv "$d.tmp" "$d"
}

build_helm() {
  local d="$CACHE/helm-$HELM_VERSION"
  [[ -x "$d/helm" ]] && return
  log "building helm $HELM_VERSION"
  mkdir -p "$d.tmp"
  GOBIN="$d.tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -rf "$d"; mv "$d.tmp" "$d"
}

# Validates `helm template` output against the stack's own OpenAPI schemas
# (tests/deploy). No replace directives: plain `go install` works and the
# checksum database verifies it. The same target fetches the ServiceMonitor
# CRD from prometheus-operator's module source (also checksum-verified), which
# the tests install so that ServiceMonitors validate against the real schema.
build_kubeconform() {
  local d="$CACHE/kubeconform-$KUBECONFORM_VERSION"
  local crds="$CACHE/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION"
  if [[ ! -x "$d/kubeconform" ]]; then
    log "building kubeconform $KUBECONFORM_VERSION"
    mkdir -p "$d.tmp"
    GOBIN="$d.tmp" go install -trimpath -ldflags "-s -w" \
      "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
    rm -rf "$d"; mv "$d.tmp" "$d"
  fi
  if [[ ! -f "$crds/servicemonitors.yaml" ]]; then
    local src
    src="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json \
      "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    mkdir -p "$crds.tmp"
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
      "$crds.tmp/servicemonitors.yaml"
    rm -rf "$crds"; mv "$crds.tmp" "$crds"
  fi
}

# HashiCorp Vault, the second Vault-API server of the stack (OpenBao is the default).
regen_vault() {
  local mod="$HERE/go/vault" gomod
  gomod="$(go list -m -f '{{.GoMod}}' "github.com/hashicorp/vault@$VAULT_VERSION")"
  (cd "$mod" && rm -f go.mod go.sum && go mod init example.invalid/sealkit/devstack/vault >/dev/null 2>&1 \
    && go mod edit -go=1.26)
  # Every replace of Vault's go.mod; a local-path one (a nested module the zip lacks) becomes
  # that module at the version Vault requires, or at VAULT_SDK_VERSION for the sdk.
  local r
  for r in $(go mod edit -json "$gomod" | VAULT_SDK_VERSION="$VAULT_SDK_VERSION" python3 -c '
import json, os, sys
mod = json.load(sys.stdin)
req = {r["Path"]: r["Version"] for r in mod.get("Require") or []}
sdk = os.environ.get("VAULT_SDK_VERSION")
for r in mod.get("Replace") or []:
    old, new = r["Old"], r["New"]
    path = old["Path"]
    lhs = path + ("@" + old["Version"] if old.get("Version") else "")
    if new["Path"].startswith("."):
        ver = sdk if path.endswith("/sdk") and sdk else req[path]
        print(lhs + "=" + path + "@" + ver)
    else:
        print(lhs + "=" + new["Path"] + "@" + new["Version"])
'); do
    (cd "$mod" && go mod edit -replace="$r")
  done
  (cd "$mod" && go get -tool "github.com/hashicorp/vault@$VAULT_VERSION")
}

build_vault() {
  local d="$vault_dir"
  [[ -x "$d/vault" ]] && return
  if [[ "${REGEN:-0}" == 1 || ! -f "$HERE/go/vault/go.sum" ]] \
     || ! grep -q "vault/sdk => github.com/hashicorp/vault/sdk $VAULT_SDK_VERSION\$" "$HERE/go/vault/go.mod"; then
    regen_vault
  fi
  log "building vault $VAULT_VERSION (cold: ~16 min on 2 quiet cores, 4.5 GB peak RSS)"
  rm -rf "$d.tmp"; mkdir -p "$d.tmp"
  local wrap="$HERE/go/vault" meta=""
  if [[ -n "$VAULT_PATCH" ]]; then
    # `go build -overlay` may not replace files in the module cache, so the build uses a
    # patched copy of Vault's module beside it (the cache stays as downloaded) and a copy
    # of the wrapper module that points there.
    local src
    src="$(cd "$wrap" && go mod download -json github.com/hashicorp/vault \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    cp -r "$src" "$d.tmp/src" && chmod -R u+w "$d.tmp/src"
    patch --quiet -d "$d.tmp/src" -p1 < "$VAULT_PATCH"
    mkdir "$d.tmp/wrap" && cp "$wrap/go.mod" "$wrap/go.sum" "$d.tmp/wrap/"
    (cd "$d.tmp/wrap" && go mod edit -replace="github.com/hashicorp/vault=$d.tmp/src")
    wrap="$d.tmp/wrap"
    meta=" -X github.com/hashicorp/vault/version.VersionMetadata=sealkit.sdk.patch"
  fi
  # `vault` is upstream's default build tag (`minimal` drops kubernetes auth and the database
  # engine). The version comes from the module's embedded version/VERSION file.
  (cd "$wrap" && nice -n 15 go build -trimpath -tags vault \
     -ldflags "-s -w -X github.com/hashicorp/vault/version.GitCommit=$VAULT_VERSION$meta" \
     -o "$d.tmp/vault" github.com/hashicorp/vault)
  rm -rf "$d.tmp/src" "$d.tmp/wrap" "$d"; mv "$d.tmp" "$d"
}

# Argo CD: one multi-call binary (cmd/) plus symlinks named after each
# component. Its go.mod replaces k8s.io/* and others, and maps gitops-engine to
# a nested directory the module zip lacks; the wrapper copies every replace and
# points gitops-engine at the same tag (published from the same repository).
regen_argocd() {
  local mod="$HERE/go/argocd" m=github.com/argoproj/argo-cd/v3 gomod line
  gomod="$(GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN go mod download -json "$m@$ARGOCD_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  (cd "$mod" && rm -f go.mod go.sum && GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN go mod init example.invalid/sealkit/devstack/argocd >/dev/null 2>&1)
  GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    rhs = new["Path"] + "@" + new["Version"] if new.get("Version") else old["Path"] + "@" + sys.argv[1]
    print(lhs + "=" + rhs)' "$ARGOCD_VERSION" | while read -r line; do
    (cd "$mod" && GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN go mod edit -replace="$line")
  done
  (cd "$mod" && GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN go get -tool "$m/cmd@$ARGOCD_VERSION")
}

# The CRDs and default config the stack installs, from the same module version.
copy_argocd_manifests() {
  local d="$1" src
  src="$(cd "$HERE/go/argocd" && GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)"
  mkdir -p "$d/manifests/base"
  cp -r "$src/manifests/crds" "$d/manifests/"
  cp -r "$src/manifests/base/config" "$d/manifests/base/"
  # The repo server runs these from PATH (the image has them in /usr/local/bin); v3.6.1
  # calls git-verify-wrapper.sh on every manifest generation, GPG enabled or not.
  mkdir -p "$d/hack"
  cp "$src/hack/git-verify-wrapper.sh" "$src/hack/gpg-wrapper.sh" "$d/hack/"
  chmod -R u+w "$d/manifests" "$d/hack"
  chmod +x "$d/hack/"*.sh
}

build_argocd() {
  local d="$CACHE/argocd-$ARGOCD_VERSION" c p=github.com/argoproj/argo-cd/v3/common
  if [[ -x "$d/argocd" ]]; then
    [[ -x "$d/hack/git-verify-wrapper.sh" ]] || copy_argocd_manifests "$d"
    return
  fi
  [[ "${REGEN:-0}" == 1 || ! -f "$HERE/go/argocd/go.sum" ]] && regen_argocd
  # Without gitCommit/gitTag, `argocd version` prints "+unknown". The module
  # zip carries no VCS data; the tag stands in for the commit.
  local ldf="-s -w -X $p.version=${ARGOCD_VERSION#v} -X $p.gitTag=$ARGOCD_VERSION -X $p.gitCommit=$ARGOCD_VERSION"
  ldf="$ldf -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  log "building argocd $ARGOCD_VERSION with $ARGOCD_GOTOOLCHAIN (cold: ~7 min, 2.4 GB)"
  mkdir -p "$d.tmp"
  (cd "$HERE/go/argocd" && GOTOOLCHAIN=$ARGOCD_GOTOOLCHAIN go build -trimpath -ldflags "$ldf" \
     -o "$d.tmp/argocd" github.com/argoproj/argo-cd/v3/cmd)
  for c in argocd-server argocd-repo-server argocd-application-controller argocd-cmp-server \
           argocd-dex argocd-notifications argocd-applicationset-controller argocd-commit-server \
           argocd-k8s-auth argocd-git-ask-pass; do
    ln -sf argocd "$d.tmp/$c"
  done
  copy_argocd_manifests "$d.tmp"
  rm -rf "$d"; mv "$d.tmp" "$d"
}

# `all`: Vault, the longest build, runs in its own session beside the others, whose module
# downloads and single-threaded links leave a core idle much of the time (measured on a cold
# machine: everything built in about 25 min with Vault beside the rest, docs/devstack.md).
# If a build in the foreground fails, the background one is stopped with it.
VAULT_BG_PID=""  # global: the EXIT trap runs after build_all has returned
stop_vault_bg() { if [[ -n "$VAULT_BG_PID" ]]; then kill -- "-$VAULT_BG_PID" 2>/dev/null || true; fi; }
build_all() {
  local vlog="$CACHE/vault-build.log"
  mkdir -p "$CACHE"
  if [[ ! -x "$vault_dir/vault" ]]; then
    log "building vault $VAULT_VERSION in the background (log: $vlog)"
    setsid bash "$0" vault >"$vlog" 2>&1 &
    VAULT_BG_PID=$!
    trap stop_vault_bg EXIT
  fi
  build_etcd; build_kubeseal; build_kube; build_containerd; build_coredns; build_helm
  build_kubeconform; build_sealed_secrets_it; build_argocd
  if [[ -n "$VAULT_BG_PID" ]]; then
    log "waiting for the vault build (log: $vlog)"
    local rc=0
    wait "$VAULT_BG_PID" || rc=$?
    VAULT_BG_PID=""
    trap - EXIT
    if ((rc != 0)); then
      tail -n 30 "$vlog" >&2; log "vault build failed (exit $rc; log: $vlog)"; return "$rc"
    fi
  fi
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kube) build_kube ;;
  kubeseal) build_kubeseal ;;
  containerd) build_containerd ;;
  coredns) build_coredns ;;
  helm) build_helm ;;
  sealed-secrets-it) build_sealed_secrets_it ;;
  kubeconform) build_kubeconform ;;
  argocd) build_argocd ;;
  vault) build_vault ;;
  all) build_all ;;
  *) log "usage: $0 [all|etcd|kube|kubeseal|containerd|coredns|helm|kubeconform|sealed-secrets-it|argocd|vault]"; exit 2 ;;
esac
