"""docs/migration.md, run for real: upstream's chart -> sealkit's chart -> upstream's chart, and
upstream's chart -> deploy/ -> upstream's chart, on a real node.

Upstream's side is upstream's own chart (helm/sealed-secrets from the v0.40.0 module source) with
upstream's controller (built from the same module source). It creates its key and unseals
SealedSecrets that the real kubeseal sealed with its certificate. Then each move follows the
documented commands and the test proves, after the old release's `helm uninstall`:

- nothing is re-sealed: every SealedSecret keeps its generation and encryptedData, the key
  Secrets keep their resourceVersion and no key is added, and the new controller serves the same
  certificate;
- no Secret is rewritten: every unsealed Secret keeps its resourceVersion;
- no RBAC object is lost: every RBAC object of the new controller is still there and its
  ServiceAccount can still list SealedSecrets and create Secrets; and it does its job (a new
  SealedSecret unseals, `kubeseal --validate` answers for the old files).

Both controllers watch only the test's namespace, and the cluster-scoped names carry the
namespace's suffix, so the test cannot disturb anything else on a shared stack.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _cluster import Kube, wait_for
from _helmtools import CHART, DEPLOY, upstream_chart

pytestmark = pytest.mark.stack

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
RBAC = ("clusterrole", "clusterrolebinding", "role", "rolebinding")


class Setup:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        sealkit_image: dict[str, str],
        upstream_image: dict[str, str],
        tmp: Path,
    ) -> None:
        self.kube, self.ns, self.tmp = kube, namespace, tmp
        self.h = namespace[-6:]
        self.upstream_release = f"sealed-secrets-{self.h}"  # fullname = release name
        self.sealkit_name = f"sealed-secrets-controller-{self.h}"
        self.sealkit_image, self.upstream_image = sealkit_image, upstream_image
        self.files: list[Path] = []
        self.applied_deploy = False
        # deploy/'s ClusterRole and ClusterRoleBinding, renamed for this test: the stack's own
        # controller (deploy/ in kube-system) uses the default name.
        self.deploy_unsealer = f"sealed-secrets-controller-{self.h}-unsealer"

    # -- the two charts ---------------------------------------------------------------------------
    def upstream_values(self) -> dict[str, Any]:
        return {
            "image": {**self.upstream_image},
            "additionalNamespaces": [self.ns],
            "rbac": {"clusterRoleName": f"secrets-unsealer-{self.h}"},
        }

    def sealkit_values(self) -> dict[str, Any]:
        return {
            "image": {**self.sealkit_image},
            "additionalNamespaces": [self.ns],
            "fullnameOverride": self.sealkit_name,
        }

    def install_upstream(self) -> None:
        self.kube.helm(
            "install",
            self.upstream_release,
            str(upstream_chart()),
            "-n",
            self.ns,
            "--wait",
            "--timeout",
            "5m",
            values=self.upstream_values(),
        )
        self.kube.rollout(self.ns, self.upstream_release)

    def install_sealkit(self) -> None:
        self.kube.helm(
            "install",
            "sealkit",
            str(CHART),
            "-n",
            self.ns,
            "--wait",
            "--timeout",
            "5m",
            values=self.sealkit_values(),
        )
        self.kube.rollout(self.ns, self.sealkit_name)

    # -- sealing with kubeseal ------------------------------------------------------------------
    def cert(self, controller: str) -> str:
        return self.kube.kubeseal(
            "--controller-name", controller, "--controller-namespace", self.ns, "--fetch-cert"
        ).stdout

    def seal(self, cert: str, name: str, scope: str = "strict") -> Path:
        cert_file = self.tmp / f"{name}.pem"
        cert_file.write_text(cert)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns, "labels": {"app": name}},
            "stringData": {"value": f"{name}-plaintext"},
        }
        sealed = self.kube.kubeseal(
            "--cert", str(cert_file), "--scope", scope, "-o", "yaml", stdin=json.dumps(secret)
        ).stdout
        path = self.tmp / f"{name}.sealed.yaml"
        path.write_text(sealed)
        self.kube.kubectl("apply", "-f", str(path))
        self.files.append(path)
        return path

    def wait_unsealed(self, name: str) -> dict[str, Any]:
        return wait_for(
            f"Secret {name}",
            lambda: (
                self.kube.exists("secret", name, self.ns)
                and self.kube.get("secret", name, namespace=self.ns)
            ),
        )

    # -- snapshots --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        secrets = self.kube.items("secrets", self.ns)
        sealed = self.kube.items("sealedsecrets", self.ns)
        return {
            "secrets": {
                s["metadata"]["name"]: s["metadata"]["resourceVersion"]
                for s in secrets
                if KEY_LABEL not in (s["metadata"].get("labels") or {})
                and s["type"] not in ("kubernetes.io/service-account-token", "helm.sh/release.v1")
            },
            "keys": {
                s["metadata"]["name"]: s["metadata"]["resourceVersion"]
                for s in secrets
                if KEY_LABEL in (s["metadata"].get("labels") or {})
            },
            "sealed": {
                s["metadata"]["name"]: (s["metadata"]["generation"], s["spec"]["encryptedData"])
                for s in sealed
            },
        }

    def assert_untouched(self, before: dict[str, Any]) -> None:
        now = self.snapshot()
        assert now["keys"] == before["keys"], "a key Secret was added, changed or lost"
        kept = {n: now["sealed"].get(n) for n in before["sealed"]}
        assert kept == before["sealed"], "a SealedSecret was re-sealed, changed or lost"
        changed = {n for n, rv in before["secrets"].items() if now["secrets"].get(n) != rv}
        assert not changed, f"Secrets rewritten or lost: {sorted(changed)}"

    def rbac_of(self, selector: str, cluster_names: tuple[str, ...] = ()) -> set[tuple[str, str]]:
        """RBAC objects matching `selector`: Roles in the test's namespace; cluster-scoped
        ones only if named in `cluster_names` (when given)."""
        found: set[tuple[str, str]] = set()
        for kind in RBAC:
            args = ["get", kind, "-l", selector, "-o", "json"]
            args += ["-n", self.ns] if kind.startswith("role") else []
            for item in json.loads(self.kube.kubectl(*args).stdout)["items"]:
                name = item["metadata"]["name"]
                if kind.startswith("cluster") and cluster_names and name not in cluster_names:
                    continue
                found.add((item["kind"], name))
        return found

    def assert_controller_works(self, sa: str, controller: str, cert: str, new_name: str) -> None:
        for verb, resource in (
            ("list", "sealedsecrets.bitnami.com"),
            ("create", "secrets"),
            ("update", "sealedsecrets.bitnami.com --subresource=status"),
        ):
            assert self.kube.can_i(sa, self.ns, verb, resource, self.ns), (sa, verb, resource)
        assert self.cert(controller) == cert, "the controller serves another certificate"
        for path in self.files:
            self.kube.kubeseal(
                "--controller-name",
                controller,
                "--controller-namespace",
                self.ns,
                "--validate",
                "-f",
                str(path),
            )
        self.seal(cert, new_name)
        self.wait_unsealed(new_name)


@pytest.fixture
def setup(
    kube: Kube,
    namespace: str,
    sealkit_image: dict[str, str],
    upstream_image: dict[str, str],
    tmp_path: Path,
) -> Iterator[Setup]:
    s = Setup(kube, namespace, sealkit_image, upstream_image, tmp_path)
    try:
        yield s
    finally:
        for release in ("sealkit", s.upstream_release):
            kube.helm("uninstall", release, "-n", namespace, "--wait", check=False)
        if s.applied_deploy:
            kube.kubectl(
                "delete",
                "--ignore-not-found",
                "clusterrole,clusterrolebinding",
                s.deploy_unsealer,
                check=False,
            )


def _start_upstream(s: Setup) -> tuple[str, dict[str, Any]]:
    s.install_upstream()
    wait_for("upstream's key", lambda: s.kube.items("secrets", s.ns, f"{KEY_LABEL}=active"))
    cert = s.cert(s.upstream_release)
    for name, scope in (("db", "strict"), ("api", "namespace-wide"), ("shared", "cluster-wide")):
        s.seal(cert, name, scope)
    for name in ("db", "api", "shared"):
        secret = s.wait_unsealed(name)
        (owner,) = secret["metadata"]["ownerReferences"]
        assert owner["kind"] == "SealedSecret" and owner["controller"] is True
    return cert, s.snapshot()


def test_upstream_chart_to_sealkit_chart_and_back(setup: Setup) -> None:
    s, kube = setup, setup.kube
    cert, before = _start_upstream(s)

    # docs/migration.md, "From upstream's chart to sealkit's chart".
    kube.kubectl("-n", s.ns, "scale", "deployment", s.upstream_release, "--replicas=0")
    s.install_sealkit()
    ours = s.rbac_of("app.kubernetes.io/instance=sealkit", (f"{s.sealkit_name}-unsealer",))
    assert len(ours) == 6, ours
    theirs = s.rbac_of(
        f"app.kubernetes.io/instance={s.upstream_release}",
        (f"secrets-unsealer-{s.h}", s.upstream_release),
    )
    assert theirs and not {n for _, n in ours} & {n for _, n in theirs}
    kube.helm("uninstall", s.upstream_release, "-n", s.ns, "--wait")

    assert (
        s.rbac_of("app.kubernetes.io/instance=sealkit", (f"{s.sealkit_name}-unsealer",)) == ours
    ), "an RBAC object was lost"
    assert not kube.exists("deployment", s.upstream_release, s.ns)
    s.assert_untouched(before)
    s.assert_controller_works(s.sealkit_name, s.sealkit_name, cert, "after-sealkit")
    s.assert_untouched(before)
    between = s.snapshot()

    # docs/migration.md, "Back to upstream's chart" (from sealkit's chart).
    kube.kubectl("-n", s.ns, "scale", "deployment", s.sealkit_name, "--replicas=0")
    s.install_upstream()
    kube.helm("uninstall", "sealkit", "-n", s.ns, "--wait")
    assert (
        s.rbac_of(
            f"app.kubernetes.io/instance={s.upstream_release}",
            (f"secrets-unsealer-{s.h}", s.upstream_release),
        )
        == theirs
    )
    s.assert_untouched(between)
    s.assert_controller_works(s.upstream_release, s.upstream_release, cert, "after-rollback")
    s.assert_untouched(between)


def _deploy_kustomization(s: Setup) -> Path:
    """deploy/ as a user would consume it, moved to the test's namespace and watch scope."""
    kdir = s.tmp / "kz"
    kdir.mkdir()
    image = s.sealkit_image
    name = (
        f"{image['registry']}/{image['repository']}"
        if image.get("registry")
        else image["repository"]
    )
    rename = [{"op": "replace", "path": "/metadata/name", "value": s.deploy_unsealer}]
    (kdir / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": s.ns,
                "resources": [os.path.relpath(DEPLOY, kdir)],
                "images": [
                    {"name": "ghcr.io/sealkit/sealkit", "newName": name, "newTag": image["tag"]}
                ],
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
                                    "value": s.deploy_unsealer,
                                }
                            ]
                        ),
                    },
                    {
                        "target": {"kind": "Deployment", "name": "sealed-secrets-controller"},
                        "patch": json.dumps(
                            [
                                {
                                    "op": "add",
                                    "path": "/spec/template/spec/containers/0/env/-",
                                    "value": {
                                        "name": "SEALED_SECRETS_ADDITIONAL_NAMESPACES",
                                        "value": s.ns,
                                    },
                                },
                                {
                                    "op": "replace",
                                    "path": "/spec/template/spec/containers/0/imagePullPolicy",
                                    "value": image.get("pullPolicy", "IfNotPresent"),
                                },
                            ]
                        ),
                    },
                ],
            }
        )
    )
    return kdir


def test_upstream_chart_to_deploy_and_back(setup: Setup) -> None:
    s, kube = setup, setup.kube
    cert, before = _start_upstream(s)
    kdir = _deploy_kustomization(s)
    name = "sealed-secrets-controller"

    # docs/migration.md, "From upstream's chart to deploy/".
    kube.kubectl("-n", s.ns, "scale", "deployment", s.upstream_release, "--replicas=0")
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(DEPLOY / "crd.yaml"))
    s.applied_deploy = True
    kube.kubectl("apply", "--server-side", "-k", str(kdir))
    kube.rollout(s.ns, name)
    ours = s.rbac_of("app.kubernetes.io/part-of=sealkit", (s.deploy_unsealer,))
    assert len(ours) == 6, ours
    kube.helm("uninstall", s.upstream_release, "-n", s.ns, "--wait")

    assert s.rbac_of("app.kubernetes.io/part-of=sealkit", (s.deploy_unsealer,)) == ours, (
        "an RBAC object was lost"
    )
    s.assert_untouched(before)
    s.assert_controller_works(name, name, cert, "after-deploy")
    s.assert_untouched(before)
    between = s.snapshot()

    # docs/migration.md, "Back to upstream's chart" (from deploy/), scoped to this test.
    kube.kubectl("-n", s.ns, "scale", "deployment", name, "--replicas=0")
    s.install_upstream()
    kube.kubectl(
        "delete",
        "-n",
        s.ns,
        "-l",
        "app.kubernetes.io/part-of=sealkit",
        "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget,networkpolicy",
    )
    kube.kubectl("delete", "clusterrole,clusterrolebinding", s.deploy_unsealer)
    assert kube.exists("crd", "sealedsecrets.bitnami.com")
    s.assert_untouched(between)
    s.assert_controller_works(s.upstream_release, s.upstream_release, cert, "after-rollback")
    s.assert_untouched(between)
