"""charts/sealkit on a real node: helm install, helm test, helm upgrade with changed values,
helm test again, helm uninstall; with the project's image, pods scheduled by the real
scheduler and run by the real kubelet.

The release runs in the test's namespace and watches only it (`additionalNamespaces`), so it
cannot touch other tests' SealedSecrets on a shared stack; its fullname is unique too, because
its ClusterRole and ClusterRoleBinding are cluster-scoped.
"""

from __future__ import annotations

from typing import Any

import pytest
from _cluster import Kube, wait_for
from _helmtools import CHART

pytestmark = pytest.mark.stack


def _values(image: dict[str, str], namespace: str, **extra: Any) -> dict[str, Any]:
    return {
        "image": image,
        "additionalNamespaces": [namespace],
        "fullnameOverride": _fullname(namespace),
        **extra,
    }


def _fullname(namespace: str) -> str:
    return f"sealkit-{namespace[-6:]}"


def test_install_test_upgrade_uninstall(
    kube: Kube, sealkit_image: dict[str, str], namespace: str
) -> None:
    name = _fullname(namespace)
    selector = f"app.kubernetes.io/name={name}"
    try:
        _install_test_upgrade_uninstall(kube, sealkit_image, namespace, name, selector)
    finally:  # cluster-scoped objects outlive the test's namespace
        kube.helm("uninstall", "sealkit", "-n", namespace, "--wait", check=False)


def _install_test_upgrade_uninstall(
    kube: Kube, sealkit_image: dict[str, str], namespace: str, name: str, selector: str
) -> None:
    kube.helm(
        "install",
        "sealkit",
        str(CHART),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "5m",
        values=_values(sealkit_image, namespace),
    )
    assert kube.ready_pods(namespace, selector) == 2
    keys = wait_for(
        "the leader's key Secret",
        lambda: kube.items(
            "secrets", namespace, "sealedsecrets.bitnami.com/sealed-secrets-key=active"
        ),
    )
    assert len(keys) == 1
    endpoints = kube.items("endpointslices", namespace, f"kubernetes.io/service-name={name}")
    assert sum(len(e.get("endpoints") or []) for e in endpoints) == 2

    # The test pod exits non-zero on any failed step (fetch, seal, verify, foreign refused);
    # it is deleted when it succeeds (hook-succeeded), so only its phase is left to read.
    tested = kube.helm("test", "sealkit", "-n", namespace, "--timeout", "5m")
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout

    kube.helm(
        "upgrade",
        "sealkit",
        str(CHART),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "5m",
        values=_values(
            sealkit_image,
            namespace,
            replicaCount=3,
            keyrenewperiod="0",
            podLabels={"team": "platform"},
            resources={"requests": {"cpu": "20m", "memory": "80Mi"}, "limits": {"memory": "300Mi"}},
        ),
    )
    dep = kube.get("deployment", name, namespace=namespace)
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 3
    assert "--key-renew-period=0" in pod["containers"][0]["args"]
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "300Mi"
    assert kube.ready_pods(namespace, f"{selector},team=platform") == 3
    # The upgrade rolled the pods but kept the key: same Secret, same resourceVersion.
    after = kube.items("secrets", namespace, "sealedsecrets.bitnami.com/sealed-secrets-key")
    assert [(k["metadata"]["name"], k["metadata"]["resourceVersion"]) for k in after] == [
        (k["metadata"]["name"], k["metadata"]["resourceVersion"]) for k in keys
    ]
    tested = kube.helm("test", "sealkit", "-n", namespace, "--timeout", "5m")
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout

    kube.helm("uninstall", "sealkit", "-n", namespace, "--wait", "--timeout", "5m")
    for kind in (
        "deployment",
        "service",
        "serviceaccount",
        "role",
        "rolebinding",
        "poddisruptionbudget",
    ):
        left = kube.items(kind, namespace, "app.kubernetes.io/instance=sealkit")
        assert left == [], (kind, [i["metadata"]["name"] for i in left])
    assert not kube.exists("clusterrole", f"{name}-unsealer")
    # What the release never owned stays: the CRD and the key.
    assert kube.exists("crd", "sealedsecrets.bitnami.com")
    assert (
        len(kube.items("secrets", namespace, "sealedsecrets.bitnami.com/sealed-secrets-key")) == 1
    )
