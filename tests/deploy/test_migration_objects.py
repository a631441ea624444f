"""docs/migration.md at the object level, on the real apiserver (no pods needed): the
documented commands, with upstream's own chart and its default names, run without a conflict,
and `helm uninstall` of the old release deletes no object the new controller uses.

sealkit's cluster-scoped names get the namespace's suffix here (the chart through
`fullnameOverride`, deploy/ through a patch of its ClusterRole and ClusterRoleBinding): the
stack's own controller (deploy/ in kube-system, tests/node and the demo) uses the default ones.

Proof that an RBAC object is not lost is stronger than "it exists": each keeps its uid (it was
not deleted and re-created) and the ServiceAccount is still allowed to do its job
(SubjectAccessReview through `kubectl auth can-i`). test_migration.py runs the same steps with
running controllers on a real node.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _cluster import Kube
from _helmtools import CHART, DEPLOY, upstream_chart

pytestmark = pytest.mark.stack

UPSTREAM = "sealed-secrets"  # upstream's default release name (and so its fullname)
SEALKIT_SA = "sealed-secrets-controller"  # deploy/'s; the chart's here is <SA>-<suffix>
RBAC = "clusterrole,clusterrolebinding,role,rolebinding"
JOBS = [
    ("list", "sealedsecrets.bitnami.com"),
    ("watch", "sealedsecrets.bitnami.com"),
    ("update", "sealedsecrets.bitnami.com --subresource=status"),
    ("create", "secrets"),
    ("update", "secrets"),
    ("create", "events"),
]


def _rbac(kube: Kube, namespace: str, selector: str) -> dict[tuple[str, str], str]:
    """{(kind, name): uid} of RBAC objects matching selector (Roles in `namespace` only)."""
    out: dict[tuple[str, str], str] = {}
    for kind in RBAC.split(","):
        args = ["get", kind, "-l", selector, "-o", "json"]
        if kind.startswith("role"):
            args += ["-n", namespace]
        for item in json.loads(kube.kubectl(*args).stdout)["items"]:
            name = item["metadata"]["name"]
            if kind.startswith("cluster") and name not in (
                "secrets-unsealer",
                UPSTREAM,
                _unsealer(namespace),
            ):
                continue  # other installs' (the stack's own controller, other tests)
            out[(item["kind"], item["metadata"]["name"])] = item["metadata"]["uid"]
    return out


def _can_do_its_job(kube: Kube, namespace: str, sa: str, *, sealkit: bool = True) -> None:
    for verb, resource in JOBS:
        assert kube.can_i(sa, namespace, verb, resource, namespace), (sa, verb, resource)
    if sealkit:  # upstream grants namespaces only with additionalNamespaces
        assert kube.can_i(sa, namespace, "get", "namespaces", namespace)
        assert kube.can_i(sa, namespace, "create", "leases.coordination.k8s.io", namespace)


@pytest.fixture
def clean(stack_kube: Kube, namespace: str) -> Iterator[Kube]:
    kube = stack_kube
    for name in ("secrets-unsealer", UPSTREAM):
        for kind in ("clusterrole", "clusterrolebinding"):
            if kube.exists(kind, name) and not _remove_if_orphaned(kube, kind, name):
                pytest.fail(
                    f"cluster-scoped {name} exists already (another install on this stack?)"
                )
    try:
        yield kube
    finally:
        for release in ("sealkit", UPSTREAM):
            kube.helm("uninstall", release, "-n", namespace, "--wait", check=False)
        kube.kubectl(
            "delete",
            "--ignore-not-found",
            "clusterrole,clusterrolebinding",
            _unsealer(namespace),
            check=False,
        )
        # Upstream's default cluster-scoped names were absent at the start, so they are ours:
        # gone even when `helm uninstall` failed, so the next test starts clean.
        for kind, name in (
            ("clusterrole", "secrets-unsealer"),
            ("clusterrolebinding", UPSTREAM),
            ("clusterrole", UPSTREAM),
            ("clusterrolebinding", "secrets-unsealer"),
        ):
            kube.kubectl("delete", "--ignore-not-found", kind, name, check=False)


def _remove_if_orphaned(kube: Kube, kind: str, name: str) -> bool:
    """Delete a cluster-scoped object an earlier, interrupted run of these tests left: its Helm
    release lived in a test namespace (`t-...`) that is gone now. Anything else is another
    live install: kept (False)."""
    item = json.loads(kube.kubectl("get", kind, name, "-o", "json").stdout)
    release_ns = (item["metadata"].get("annotations") or {}).get(
        "meta.helm.sh/release-namespace", ""
    )
    if not release_ns.startswith("t-"):
        return False
    got = kube.kubectl("get", "namespace", release_ns, "-o", "json", check=False)
    if got.returncode == 0 and not json.loads(got.stdout)["metadata"].get("deletionTimestamp"):
        return False
    kube.kubectl("delete", "--ignore-not-found", kind, name)
    return True


def _unsealer(namespace: str) -> str:
    return f"{SEALKIT_SA}-{namespace[-6:]}-unsealer"


def _install_upstream(kube: Kube, namespace: str) -> dict[tuple[str, str], str]:
    kube.helm("install", UPSTREAM, str(upstream_chart()), "-n", namespace)
    theirs = _rbac(kube, namespace, f"app.kubernetes.io/instance={UPSTREAM}")
    assert set(theirs) == {
        ("ClusterRole", "secrets-unsealer"),
        ("ClusterRoleBinding", UPSTREAM),
        ("Role", f"{UPSTREAM}-key-admin"),
        ("RoleBinding", f"{UPSTREAM}-key-admin"),
        ("Role", f"{UPSTREAM}-service-proxier"),
        ("RoleBinding", f"{UPSTREAM}-service-proxier"),
    }
    return theirs


def test_upstream_chart_to_sealkit_chart_and_back(clean: Kube, namespace: str) -> None:
    kube = clean
    theirs = _install_upstream(kube, namespace)
    kube.kubectl("-n", namespace, "scale", "deployment", UPSTREAM, "--replicas=0")
    fullname = f"{SEALKIT_SA}-{namespace[-6:]}"
    kube.helm(
        "install",
        "sealkit",
        str(CHART),
        "-n",
        namespace,  # no conflict: nothing shared
        "--set",
        f"fullnameOverride={fullname}",
    )
    ours = _rbac(kube, namespace, "app.kubernetes.io/instance=sealkit")
    assert len(ours) == 6 and not {n for _, n in ours} & {n for _, n in theirs}
    kube.helm("uninstall", UPSTREAM, "-n", namespace, "--wait")
    assert _rbac(kube, namespace, "app.kubernetes.io/instance=sealkit") == ours
    assert _rbac(kube, namespace, f"app.kubernetes.io/instance={UPSTREAM}") == {}
    _can_do_its_job(kube, namespace, fullname)
    assert kube.exists("crd", "sealedsecrets.bitnami.com")

    # Back: upstream's chart next to sealkit's, then sealkit's release goes.
    kube.kubectl("-n", namespace, "scale", "deployment", fullname, "--replicas=0")
    theirs = _install_upstream(kube, namespace)
    kube.helm("uninstall", "sealkit", "-n", namespace, "--wait")
    assert _rbac(kube, namespace, f"app.kubernetes.io/instance={UPSTREAM}") == theirs
    _can_do_its_job(kube, namespace, UPSTREAM, sealkit=False)
    assert kube.exists("crd", "sealedsecrets.bitnami.com")


def _deploy_in(tmp: Path, namespace: str) -> Path:
    kdir = tmp / "kz"
    kdir.mkdir()
    rename = [{"op": "replace", "path": "/metadata/name", "value": _unsealer(namespace)}]
    (kdir / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "resources": [os.path.relpath(DEPLOY, kdir)],
                "patches": [
                    {"target": {"kind": "ClusterRole"}, "patch": json.dumps(rename)},
                    {
                        "target": {"kind": "ClusterRoleBinding"},
                        "patch": json.dumps(
                            rename
                            + [
                                {
                                    "op": "replace",
                                    "path": "/roleRef/name",
                                    "value": _unsealer(namespace),
                                }
                            ]
                        ),
                    },
                ],
            }
        )
    )
    return kdir


def test_upstream_chart_to_deploy_and_back(clean: Kube, namespace: str, tmp_path: Path) -> None:
    kube = clean
    theirs = _install_upstream(kube, namespace)
    kube.kubectl("-n", namespace, "scale", "deployment", UPSTREAM, "--replicas=0")
    # The CRD alone, forced (Helm's field manager owns upstream's description texts), then
    # everything else without forcing: no other object is shared, so nothing conflicts.
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(DEPLOY / "crd.yaml"))
    applied = kube.kubectl("apply", "--server-side", "-k", str(_deploy_in(tmp_path, namespace)))
    assert applied.stdout.count("serverside-applied") == 12, applied.stdout
    selector = "app.kubernetes.io/part-of=sealkit"
    ours = _rbac(kube, namespace, selector)
    assert ("ClusterRole", _unsealer(namespace)) in ours
    assert len(ours) == 6 and not {n for _, n in ours} & {n for _, n in theirs}
    kube.helm("uninstall", UPSTREAM, "-n", namespace, "--wait")
    assert _rbac(kube, namespace, selector) == ours
    _can_do_its_job(kube, namespace, SEALKIT_SA)

    # Back: upstream's chart, then deploy/'s objects by label, never the CRD.
    kube.kubectl("-n", namespace, "scale", "deployment", SEALKIT_SA, "--replicas=0")
    theirs = _install_upstream(kube, namespace)
    kube.kubectl(
        "delete",
        "-n",
        namespace,
        "-l",
        selector,
        "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget,networkpolicy",
    )
    kube.kubectl("delete", "clusterrole,clusterrolebinding", _unsealer(namespace))
    assert _rbac(kube, namespace, selector) == {}
    assert _rbac(kube, namespace, f"app.kubernetes.io/instance={UPSTREAM}") == theirs
    _can_do_its_job(kube, namespace, UPSTREAM, sealkit=False)
    assert kube.exists("crd", "sealedsecrets.bitnami.com")
