"""The real tools these tests drive: Helm, kubeconform, kubectl's kustomize, upstream's chart.

Helm and kubeconform are Go-built into the cache by `devstack/build-binaries.sh` (versions pinned
there); upstream's chart is read from the `github.com/bitnami/sealed-secrets` module source that
the kubeseal wrapper module pins by its go.sum. A missing tool skips the test locally and fails it
under CI (`devstack.testing.unavailable`).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from devstack import binaries

__all__ = [
    "CHART",
    "DEPLOY",
    "HELM_ONLY_LABELS",
    "ROOT",
    "by_key",
    "helm",
    "helm_template",
    "kubeconform",
    "kustomize",
    "servicemonitor_crd",
    "tool",
    "upstream_chart",
]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sealkit"
DEPLOY = ROOT / "deploy"
KUBE_VERSION = "1.36.3"
# Helm's bookkeeping labels: the only difference allowed between the chart and deploy/.
HELM_ONLY_LABELS = (
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
)


def tool(sub: str, name: str, var: str, target: str = "") -> str:
    """A file in the Go-built cache, or skip/fail the test (see module docstring)."""
    from devstack.testing import unavailable

    path = binaries.cache_dir() / f"{sub}-{binaries._pinned(var)}" / name
    if not path.is_file():
        unavailable(f"{path} not found; run devstack/build-binaries.sh {target or sub}")
    return str(path)


def helm() -> str:
    return tool("helm", "helm", "HELM_VERSION")


def kubeconform() -> str:
    return tool("kubeconform", "kubeconform", "KUBECONFORM_VERSION")


def servicemonitor_crd() -> Path:
    """prometheus-operator's ServiceMonitor CRD (fetched by the kubeconform build target)."""
    return Path(
        tool(
            "prometheus-operator-crds",
            "servicemonitors.yaml",
            "PROMETHEUS_OPERATOR_VERSION",
            "kubeconform",
        )
    )


def upstream_chart() -> Path:
    """helm/sealed-secrets from the module source the kubeseal wrapper pins (go.sum-verified)."""
    from devstack.testing import unavailable

    proc = subprocess.run(
        ["go", "mod", "download", "-json", "github.com/bitnami/sealed-secrets@v0.40.0"],
        cwd=ROOT / "devstack" / "go" / "kubeseal",
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local"),
    )
    if proc.returncode != 0:
        unavailable(f"upstream's module source: {proc.stderr.strip()[:300]}")
    chart = Path(json.loads(proc.stdout)["Dir"]) / "helm" / "sealed-secrets"
    assert (chart / "Chart.yaml").is_file(), chart
    return chart


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(
    *args: str,
    namespace: str = "kube-system",
    release: str = "sealkit",
    values: dict[str, Any] | None = None,
    chart: Path = CHART,
    tests: bool = False,
    crds: bool = True,
) -> list[dict[str, Any]]:
    """`helm template` of the chart; values given as a dict go through a values file."""
    cmd = [
        helm(),
        "template",
        release,
        str(chart),
        "-n",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *args,
    ]
    if crds:
        cmd.append("--include-crds")
    if not tests:
        cmd.append("--skip-tests")
    if values is not None:
        cmd += ["-f", "-"]
    proc = subprocess.run(
        cmd,
        input=yaml.safe_dump(values) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return _docs(proc.stdout)


def kustomize(
    kubectl: str, tmp: Path, *, components: tuple[str, ...] = (), tenant: str | None = None
) -> list[dict[str, Any]]:
    """`kubectl kustomize` of deploy/ with the given components (and the tenant parameter)."""
    kdir = tmp / f"kz-{len(list(tmp.glob('kz-*')))}"
    kdir.mkdir()
    kz: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(DEPLOY, kdir)],
        "components": [os.path.relpath(DEPLOY / c, kdir) for c in components],
    }
    if tenant is not None:
        kz["configMapGenerator"] = [
            {
                "name": "sealkit-tenant",
                "literals": [f"namespace={tenant}"],
                "options": {
                    "disableNameSuffixHash": True,
                    "annotations": {"config.kubernetes.io/local-config": "true"},
                },
            }
        ]
    (kdir / "kustomization.yaml").write_text(yaml.safe_dump(kz))
    proc = subprocess.run(
        [kubectl, "kustomize", str(kdir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return _docs(proc.stdout)


def by_key(
    docs: list[dict[str, Any]], *, strip_helm: bool = False
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Objects keyed by (kind, namespace, name); optionally without Helm's bookkeeping labels."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for d in docs:
        meta = d["metadata"]
        key = (d["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in out, f"rendered twice: {key}"
        if strip_helm:
            d = copy.deepcopy(d)
            meta = d["metadata"]
            labels = meta.get("labels") or {}
            for label in HELM_ONLY_LABELS:
                labels.pop(label, None)
        out[key] = d
    return out
