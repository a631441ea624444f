"""deploy/rbac.yaml is enough: a real controller runs as the ServiceAccount and does its job.

The ServiceAccount, ClusterRole and Role from deploy/ are applied for real, re-homed into the
test's namespace (the ClusterRole gets a per-test name), and `sealkit-controller` runs with a
TokenRequest token of that ServiceAccount, i.e. with exactly the manifests' permissions and
nothing more. It must generate its key, take the Lease, unseal a SealedSecret, write the status
and an event, and never hit a 403.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.leader import DEFAULT_LEASE_NAME

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(importlib.util.find_spec("controller.main") is None,
                       reason="controller.main (sealkit-controller) not written yet"),
]

ROOT = Path(__file__).resolve().parents[2]
SA = "sealed-secrets-controller"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rehomed(namespace: str) -> list[dict[str, Any]]:
    """SA + controller RBAC from deploy/, moved into `namespace` (the proxier Role is skipped)."""
    docs = [d for f in ("serviceaccount.yaml", "rbac.yaml")
            for d in yaml.safe_load_all((ROOT / "deploy" / f).read_text()) if d]
    out = []
    suffix = f"-{namespace}"
    for d in docs:
        if "service-proxier" in d["metadata"]["name"]:
            continue
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            d["metadata"]["name"] += suffix
        else:
            d["metadata"]["namespace"] = namespace
        if d["kind"] == "ClusterRoleBinding":
            d["roleRef"]["name"] += suffix
        for subject in d.get("subjects", []):
            subject["namespace"] = namespace
        out.append(d)
    return out


@pytest.fixture
def sa_kubeconfig(stack: Any, kube_api: Any, namespace: str, kubectl_path: str,
                  tmp_path: Path) -> Iterator[Path]:
    from kubernetes import client

    subprocess.run(
        [kubectl_path, "--kubeconfig", stack.kubeconfig, "apply", "--server-side",
         "--field-manager=sealkit-deploy", "--force-conflicts", "-f",
         str(ROOT / "deploy" / "crd.yaml")], check=True, capture_output=True, timeout=60)
    docs = _rehomed(namespace)
    applied = subprocess.run(
        [kubectl_path, "--kubeconfig", stack.kubeconfig, "apply", "-f", "-"],
        input=yaml.safe_dump_all(docs), capture_output=True, text=True, timeout=60)
    assert applied.returncode == 0, applied.stderr
    token = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
        SA, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    path = tmp_path / "sa.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "stack", "cluster": {
            "server": stack.apiserver_url, "certificate-authority": stack.ca_file}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "stack", "user": "sa",
                                                "namespace": namespace}}],
    }))
    try:
        yield path
    finally:
        rbac = client.RbacAuthorizationV1Api(kube_api)
        for d in docs:
            if d["kind"] == "ClusterRole":
                rbac.delete_cluster_role(d["metadata"]["name"])
            elif d["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(d["metadata"]["name"])


def test_controller_runs_with_exactly_the_manifest_permissions(
    sa_kubeconfig: Path, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client

    from sealkit.certs import load_public_key
    from sealkit.model import seal_secret

    port, metrics_port = _free_port(), _free_port()
    log = tmp_path / "controller.log"
    env = {**os.environ, "POD_NAMESPACE": namespace, "POD_NAME": "rbac-test"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.main", "--kubeconfig", str(sa_kubeconfig),
             "--all-namespaces=false", "--key-size", "2048",
             "--listen-addr", f"127.0.0.1:{port}",
             "--listen-metrics-addr", f"127.0.0.1:{metrics_port}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def logs() -> str:
            return log.read_text(errors="replace")[-5000:]

        cert = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not cert:
            assert proc.poll() is None, logs()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/cert.pem",
                                            timeout=2) as r:
                    cert = r.read()
            except OSError:
                time.sleep(0.3)
        assert cert, logs()
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": "app", "namespace": namespace},
                  "stringData": {"password": "rbac-canary"}}
        sealed = seal_secret(secret, load_public_key(cert))
        api = client.CustomObjectsApi(kube_api)
        api.create_namespaced_custom_object("bitnami.com", "v1alpha1", namespace,
                                            "sealedsecrets", sealed)
        core = client.CoreV1Api(kube_api)
        got = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                got = core.read_namespaced_secret("app", namespace)
                break
            except client.exceptions.ApiException:
                time.sleep(0.3)
        assert got is not None, logs()
        assert base64.b64decode(got.data["password"]) == b"rbac-canary"
        status: dict[str, Any] = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status = api.get_namespaced_custom_object(
                "bitnami.com", "v1alpha1", namespace, "sealedsecrets", "app").get("status") or {}
            if status.get("conditions"):
                break
            time.sleep(0.3)
        assert status.get("conditions"), logs()
        assert status["conditions"][0]["status"] == "True", (status, logs())
        events = core.list_namespaced_event(namespace).items
        assert any(e.reason == "Unsealed" for e in events), logs()
        lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(
            DEFAULT_LEASE_NAME, namespace)
        assert lease.spec.holder_identity.startswith("rbac-test")
        keys = core.list_namespaced_secret(
            namespace, label_selector="sealedsecrets.bitnami.com/sealed-secrets-key=active")
        assert len(keys.items) == 1
        text = logs()
        assert "403" not in text and "forbidden" not in text.lower(), text
        assert "rbac-canary" not in text
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
