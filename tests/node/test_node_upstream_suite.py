"""Upstream's integration suite (bitnami/sealed-secrets v0.40.0, unmodified) against the
controller deployed from `deploy/` on the stack's real node, so that its RBAC is exercised:
two replicas with leader election, the ServiceAccount and (Cluster)Roles of `deploy/rbac.yaml`,
the Service of `deploy/service.yaml`; kubeseal reaches it through the apiserver's service proxy
to the pods the kubelet runs. Once with the real kubeseal, once with `sealkit` as
``--kubeseal-bin``. The two racy "should not recreate" specs are allowed to fail here; they
are held to upstream's controller's pass rate in test_node_upstream_racy.py (see
docs/compatibility.md).

The module-scoped `deployed` fixture deletes the Deployment and waits until its pods are gone,
so test modules after this one find no cluster-wide controller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.node.conftest import kubectl
from tests.sealkit.test_upstream_suite import BIN_DIR, _check, run_suite, suite_binary

pytestmark = [pytest.mark.stack]

__all__ = ["suite_binary"]  # the fixture, re-used


def _serving_pods(stack: Any) -> list[str]:
    """The controller pods behind the Service (the Endpoints' targetRefs)."""
    out = kubectl(
        stack,
        "-n",
        "kube-system",
        "get",
        "endpoints",
        "sealed-secrets-controller",
        "-o",
        "jsonpath={.subsets[*].addresses[*].targetRef.name}",
    ).stdout
    return out.split()


def test_upstream_suite_against_deployed_controller_with_real_kubeseal(
    suite_binary: str, node_stack: Any, deployed: float, kubeseal_path: str, tmp_path: Path
) -> None:
    pods = _serving_pods(node_stack)
    assert pods and all(p.startswith("sealed-secrets-controller-") for p in pods), pods
    specs = run_suite(
        suite_binary,
        node_stack.kubeconfig,
        kubeseal_path,
        str(BIN_DIR / "sealkit-controller"),
        tmp_path / "report.json",
    )
    _check(specs, 41, "deploy/ on the node + kubeseal")


def test_upstream_kubeseal_specs_against_deployed_controller_with_sealkit(
    suite_binary: str, node_stack: Any, deployed: float, tmp_path: Path
) -> None:
    specs = run_suite(
        suite_binary,
        node_stack.kubeconfig,
        str(BIN_DIR / "sealkit"),
        str(BIN_DIR / "sealkit-controller"),
        tmp_path / "report.json",
        focus="kubeseal",
    )
    _check(specs, 15, "deploy/ on the node + sealkit as kubeseal")
