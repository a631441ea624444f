"""deploy/ manifests and the Dockerfile: static checks, plus the real apiserver's verdict.

The stack tests install the CRD for real (server-side apply, idempotent: other test runs share
the apiserver and need the same CRD), then server-side dry-run the whole kustomization, store
SealedSecrets that sealkit and the real kubeseal emit, and read the printer columns back.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sealkit.keys import generate_key_and_cert
from sealkit.model import seal_secret
from sealkit.scopes import Scope

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SYSTEM = "kube-system"


def _docs() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for res in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((DEPLOY / res).read_text()) if d)
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _crd_schema() -> dict[str, Any]:
    crd = _one("CustomResourceDefinition", "sealedsecrets.bitnami.com")
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _as_json_schema(node: Any) -> Any:
    """OpenAPI v3 `nullable` -> JSON Schema `type: [t, "null"]` (jsonschema ignores x-*)."""
    if isinstance(node, dict):
        out = {k: _as_json_schema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_as_json_schema(v) for v in node]
    return node


@pytest.fixture(scope="module")
def public_key() -> Any:
    key, _ = generate_key_and_cert(bits=2048)
    return key.public_key()


def _emitted(
    public_key: Any,
    scope: Scope,
    *,
    name: str = "db",
    namespace: str = "shop",
) -> dict[str, Any]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/basic-auth",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "shop"},
            "annotations": {"team": "a"},
        },
        "stringData": {"username": "admin", "password": "s3cr3t"},
    }
    return seal_secret(secret, public_key, scope=scope)


# -- static ----------------------------------------------------------------------------------
def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_crd_shape() -> None:
    crd = _one("CustomResourceDefinition", "sealedsecrets.bitnami.com")
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert (spec["group"], spec["scope"]) == ("bitnami.com", "Namespaced")
    assert spec["names"] == {
        "kind": "SealedSecret",
        "listKind": "SealedSecretList",
        "plural": "sealedsecrets",
        "singular": "sealedsecret",
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    cols = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert cols == [
        ("Status", ".status.conditions[0].message"),
        ("Synced", ".status.conditions[0].status"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["required"] == ["spec"]
    assert schema["properties"]["spec"]["required"] == ["encryptedData"]


@pytest.mark.parametrize("scope", list(Scope))
def test_sealkit_output_validates_against_the_crd_schema(public_key: Any, scope: Scope) -> None:
    schema = _as_json_schema(_crd_schema())
    ss = _emitted(public_key, scope)
    ss["spec"]["template"]["data"] = {"dsn": "user={{ .username }}", "feed-only": None}
    jsonschema.validate(ss, schema)
    broken = copy.deepcopy(ss)
    del broken["spec"]["encryptedData"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_deployment_is_ha_hardened_and_probed() -> None:
    dep = _one("Deployment", "sealed-secrets-controller")
    assert dep["metadata"]["namespace"] == SYSTEM
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "sealed-secrets-controller"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "metrics": 8081}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] == 30


def test_service_is_what_kubeseal_looks_for() -> None:
    svc = _one("Service", "sealed-secrets-controller")
    assert svc["metadata"]["namespace"] == SYSTEM
    first = svc["spec"]["ports"][0]
    assert (first["name"], first["port"]) == ("http", 8080)


def _rules(kind: str, name: str) -> list[dict[str, Any]]:
    return _one(kind, name)["rules"]


def _verbs(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        v
        for r in rules
        if group in r["apiGroups"] and resource in r["resources"]
        for v in r["verbs"]
    }


def test_rbac_is_least_privilege() -> None:
    cluster = _rules("ClusterRole", "sealed-secrets-controller-unsealer")
    assert _verbs(cluster, "bitnami.com", "sealedsecrets") == {"get", "list", "watch"}
    assert _verbs(cluster, "bitnami.com", "sealedsecrets/status") == {"update", "patch"}
    assert "delete" not in _verbs(cluster, "", "secrets")
    assert _verbs(cluster, "", "namespaces") == {"get"}
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in cluster)
    keys = _rules("Role", "sealed-secrets-controller-keys")
    assert _verbs(keys, "", "secrets") >= {"create", "list"}
    assert _verbs(keys, "coordination.k8s.io", "leases") == {"get", "create", "update"}
    named = [r for r in keys if "leases" in r["resources"] and r.get("resourceNames")]
    from controller.leader import DEFAULT_LEASE_NAME

    assert named and named[0]["resourceNames"] == [DEFAULT_LEASE_NAME]
    proxier = _rules("Role", "sealed-secrets-controller-proxy-users")
    proxy = [r for r in proxier if "services/proxy" in r["resources"]][0]
    assert set(proxy["verbs"]) == {"get", "create"}
    assert set(proxy["resourceNames"]) == {
        "http:sealed-secrets-controller:",
        "http:sealed-secrets-controller:http",
        "sealed-secrets-controller",
    }
    binding = _one("RoleBinding", "sealed-secrets-controller-proxy-users")
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
    ]


def test_dockerfile_is_slim_non_root_and_shared() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "-slim" in text
    assert 'ENTRYPOINT ["sealkit-controller"]' in text
    assert "[controller,vault]" in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # The build context is an allow-list: nothing but the packages and their metadata.
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and "!controller/" in ignore and ".devstack" not in " ".join(ignore)


# -- on the real apiserver -------------------------------------------------------------------
def _kubectl(
    kubectl: str, kubeconfig: str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def crd_installed(stack: Any, kube_api: Any, kubectl_path: str) -> str:
    _kubectl(
        kubectl_path,
        stack.kubeconfig,
        "apply",
        "--server-side",
        "--field-manager=sealkit-deploy",
        "--force-conflicts",
        "-f",
        str(DEPLOY / "crd.yaml"),
    )
    _kubectl(
        kubectl_path,
        stack.kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/sealedsecrets.bitnami.com",
    )
    return stack.kubeconfig


@pytest.mark.stack
def test_every_manifest_passes_a_server_side_dry_run(crd_installed: str, kubectl_path: str) -> None:
    def deployment() -> str:
        # uid + resourceVersion: absent stays absent, and one a node test really installed on a
        # shared stack (tests/node applies deploy/ to kube-system) is left untouched.
        got = _kubectl(
            kubectl_path,
            crd_installed,
            "get",
            "deployment",
            "-n",
            SYSTEM,
            "sealed-secrets-controller",
            "--ignore-not-found",
            "-o",
            "jsonpath={.metadata.uid}/{.metadata.resourceVersion}",
        )
        return got.stdout.strip()

    before = deployment()
    proc = _kubectl(
        kubectl_path,
        crd_installed,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=sealkit-deploy-dry-run",
        "--force-conflicts",
        "-k",
        str(DEPLOY),
    )
    applied = [line for line in proc.stdout.splitlines() if "serverside-applied" in line]
    assert len(applied) == len(_docs()), proc.stdout
    assert all("server dry run" in line for line in applied)
    # Nothing but the CRD was really created or changed.
    assert deployment() == before


@pytest.mark.stack
@pytest.mark.parametrize("scope", list(Scope))
def test_crd_stores_sealkit_output_unpruned(
    crd_installed: str, kube_api: Any, namespace: str, public_key: Any, scope: Scope
) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(kube_api)
    ss = _emitted(public_key, scope, namespace=namespace)
    ss["spec"]["template"]["data"] = {"dsn": "user={{ .username }}", "feed-only": None}
    ss["spec"]["template"]["immutable"] = True
    ss["spec"]["somethingNew"] = {"kept": "only where upstream preserves unknown fields"}
    api.create_namespaced_custom_object("bitnami.com", "v1alpha1", namespace, "sealedsecrets", ss)
    got = api.get_namespaced_custom_object(
        "bitnami.com", "v1alpha1", namespace, "sealedsecrets", "db"
    )
    assert got["spec"]["encryptedData"] == ss["spec"]["encryptedData"]
    template = got["spec"]["template"]
    assert template["data"] == {"dsn": "user={{ .username }}", "feed-only": None}
    assert template["immutable"] is True
    assert template["type"] == "kubernetes.io/basic-auth"
    want_meta = {k: v for k, v in ss["spec"]["template"]["metadata"].items() if v is not None}
    assert {k: v for k, v in template["metadata"].items() if v is not None} == want_meta
    assert "somethingNew" not in got["spec"]  # spec itself is structural: pruned
    assert got["metadata"].get("annotations") == ss["metadata"].get("annotations")


@pytest.mark.stack
def test_crd_rejects_a_sealedsecret_without_encrypted_data(
    crd_installed: str, kube_api: Any, namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(kube_api)
    bad = {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": "bad"},
        "spec": {"template": {}},
    }
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(
            "bitnami.com", "v1alpha1", namespace, "sealedsecrets", bad
        )
    assert err.value.status == 422
    assert "encryptedData" in str(err.value.body)


@pytest.mark.stack
def test_crd_accepts_real_kubeseal_output_and_shows_printer_columns(
    crd_installed: str,
    kube_api: Any,
    namespace: str,
    kubectl_path: str,
    kubeseal_path: str,
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from kubernetes import client

    key, cert = generate_key_and_cert(bits=2048)
    cert_file = tmp_path / "cert.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "from-kubeseal", "namespace": namespace},
        "stringData": {"token": "abc"},
    }
    sealed = subprocess.run(
        [kubeseal_path, "--cert", str(cert_file), "-o", "yaml"],
        input=json.dumps(secret),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    _kubectl(kubectl_path, crd_installed, "apply", "--server-side", "-f", "-", stdin=sealed)
    api = client.CustomObjectsApi(kube_api)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.patch_namespaced_custom_object_status(
        "bitnami.com",
        "v1alpha1",
        namespace,
        "sealedsecrets",
        "from-kubeseal",
        {
            "status": {
                "observedGeneration": 1,
                "conditions": [
                    {
                        "type": "Synced",
                        "status": "False",
                        "message": "no key could decrypt secret",
                        "lastUpdateTime": now,
                        "lastTransitionTime": now,
                    }
                ],
            }
        },
    )
    table = None
    for _ in range(20):
        out = _kubectl(kubectl_path, crd_installed, "get", "sealedsecrets", "-n", namespace)
        table = out.stdout.splitlines()
        if len(table) > 1 and "False" in table[1]:
            break
        time.sleep(0.25)
    assert table is not None
    header = table[0].split()
    assert header == ["NAME", "STATUS", "SYNCED", "AGE"]
    assert table[1].startswith("from-kubeseal")
    assert "no key could decrypt secret" in table[1]
    assert table[1].split()[-2] == "False"
    # status is a subresource: writing it through the main resource is ignored.
    got = api.get_namespaced_custom_object(
        "bitnami.com", "v1alpha1", namespace, "sealedsecrets", "from-kubeseal"
    )
    got["status"]["conditions"][0]["status"] = "True"
    api.replace_namespaced_custom_object(
        "bitnami.com", "v1alpha1", namespace, "sealedsecrets", "from-kubeseal", got
    )
    again = api.get_namespaced_custom_object(
        "bitnami.com", "v1alpha1", namespace, "sealedsecrets", "from-kubeseal"
    )
    assert again["status"]["conditions"][0]["status"] == "False"


@pytest.mark.stack
def test_namespaced_component_passes_a_server_side_dry_run(
    crd_installed: str, kubectl_path: str, namespace: str, tmp_path: Path
) -> None:
    kdir = tmp_path / "kz"
    kdir.mkdir()
    (kdir / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY, kdir)],
                "components": [os.path.relpath(DEPLOY / "namespaced", kdir)],
                # The tenant namespace is the component's parameter (a kustomize replacement).
                "configMapGenerator": [
                    {
                        "name": "sealkit-tenant",
                        "literals": [f"namespace={namespace}"],
                        "options": {
                            "disableNameSuffixHash": True,
                            "annotations": {"config.kubernetes.io/local-config": "true"},
                        },
                    }
                ],
            }
        )
    )
    rendered = _kubectl(kubectl_path, crd_installed, "kustomize", str(kdir)).stdout
    assert "TENANT_NAMESPACE" not in rendered and "sealkit-tenant" not in rendered
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    dep = [d for d in docs if d["kind"] == "Deployment"][0]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert "--all-namespaces=false" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SEALED_SECRETS_ADDITIONAL_NAMESPACES"] == namespace
    tenant = [
        d
        for d in docs
        if d["kind"] in ("Role", "RoleBinding") and d["metadata"]["namespace"] == namespace
    ]
    assert {d["kind"] for d in tenant} == {"Role", "RoleBinding"}
    cluster_role = [d for d in docs if d["kind"] == "ClusterRole"][0]
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}
    ]
    proc = _kubectl(
        kubectl_path,
        crd_installed,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=sealkit-deploy",
        "--force-conflicts",
        "-f",
        "-",
        stdin=rendered,
    )
    applied = [line for line in proc.stdout.splitlines() if "serverside-applied" in line]
    assert len(applied) == len(docs), proc.stdout
