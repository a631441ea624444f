"""deploy/'s RBAC is enough: a real controller runs as the ServiceAccount and does its job.

The ServiceAccount, ClusterRole and Roles rendered from deploy/ (and from the namespaced-Roles
component) are applied for real, re-homed into the test's namespaces (cluster-scoped objects get
a per-test name), and `sealkit-controller` runs with a TokenRequest token of that ServiceAccount,
i.e. with exactly the manifests' permissions and nothing more. It must generate its key, take
the Lease, unseal a SealedSecret, write the status and an event, and never hit a 403.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.leader import DEFAULT_LEASE_NAME

pytestmark = [
    pytest.mark.stack,
]

ROOT = Path(__file__).resolve().parents[2]
SA = "sealed-secrets-controller"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _render(kubectl: str, tmp: Path, *, namespaced: bool) -> list[dict[str, Any]]:
    """`kubectl kustomize` of deploy/ (plus the namespaced component), RBAC objects only."""
    kdir = tmp / "kustomize"
    kdir.mkdir()
    deploy = os.path.relpath(ROOT / "deploy", kdir)
    kz: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [deploy],
    }
    if namespaced:
        kz["components"] = [os.path.relpath(ROOT / "deploy" / "namespaced", kdir)]
        # The component's tenant parameter; _rehome moves "team-a" to the test's namespace.
        kz["configMapGenerator"] = [
            {
                "name": "sealkit-tenant",
                "literals": ["namespace=team-a"],
                "options": {
                    "disableNameSuffixHash": True,
                    "annotations": {"config.kubernetes.io/local-config": "true"},
                },
            }
        ]
    (kdir / "kustomization.yaml").write_text(yaml.safe_dump(kz))
    out = subprocess.run(
        [kubectl, "kustomize", str(kdir)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [
        d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] in RBAC_KINDS and "proxy-users" not in d["metadata"]["name"]
    ]


def _rehome(
    docs: list[dict[str, Any]], namespaces: dict[str, str], suffix: str
) -> list[dict[str, Any]]:
    """Move namespaced objects per `namespaces` (old -> new); suffix cluster-scoped names."""
    for d in docs:
        meta = d["metadata"]
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            meta["name"] += suffix
        else:
            meta["namespace"] = namespaces[meta["namespace"]]
        if d["kind"] == "ClusterRoleBinding":
            d["roleRef"]["name"] += suffix
        for subject in d.get("subjects", []):
            subject["namespace"] = namespaces[subject["namespace"]]
    return docs


class Installed:
    def __init__(self, kubeconfig: Path, docs: list[dict[str, Any]]) -> None:
        self.kubeconfig = kubeconfig
        self.docs = docs


@pytest.fixture
def install(
    stack: Any, kube_api: Any, kubectl_path: str, tmp_path: Path
) -> Iterator[Callable[..., Installed]]:
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(kube_api)
    cluster_scoped: list[dict[str, Any]] = []

    def install(
        namespace: str, *, namespaced: bool = False, tenants: dict[str, str] | None = None
    ) -> Installed:
        subprocess.run(
            [
                kubectl_path,
                "--kubeconfig",
                stack.kubeconfig,
                "apply",
                "--server-side",
                "--field-manager=sealkit-deploy",
                "--force-conflicts",
                "-f",
                str(ROOT / "deploy" / "crd.yaml"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        docs = _rehome(
            _render(kubectl_path, tmp_path, namespaced=namespaced),
            {"kube-system": namespace, **(tenants or {})},
            f"-{namespace}",
        )
        cluster_scoped.extend(d for d in docs if d["kind"].startswith("Cluster"))
        applied = subprocess.run(
            [kubectl_path, "--kubeconfig", stack.kubeconfig, "apply", "-f", "-"],
            input=yaml.safe_dump_all(docs),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert applied.returncode == 0, applied.stderr
        token = (
            client.CoreV1Api(kube_api)
            .create_namespaced_service_account_token(
                SA, namespace, {"spec": {"expirationSeconds": 3600}}
            )
            .status.token
        )
        path = tmp_path / "sa.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "sa",
                    "clusters": [
                        {
                            "name": "stack",
                            "cluster": {
                                "server": stack.apiserver_url,
                                "certificate-authority": stack.ca_file,
                            },
                        }
                    ],
                    "users": [{"name": "sa", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "sa",
                            "context": {"cluster": "stack", "user": "sa", "namespace": namespace},
                        }
                    ],
                }
            )
        )
        return Installed(path, docs)

    yield install
    for d in cluster_scoped:
        if d["kind"] == "ClusterRole":
            rbac.delete_cluster_role(d["metadata"]["name"])
        else:
            rbac.delete_cluster_role_binding(d["metadata"]["name"])


class Controller:
    def __init__(self, kubeconfig: Path, namespace: str, log: Path, *extra: str) -> None:
        self.port, self.metrics_port = _free_port(), _free_port()
        self.log_path = log
        env = {**os.environ, "POD_NAMESPACE": namespace, "POD_NAME": "rbac-test"}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controller.main",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--all-namespaces=false",
                    "--key-size",
                    "2048",
                    "--listen-addr",
                    f"127.0.0.1:{self.port}",
                    "--listen-metrics-addr",
                    f"127.0.0.1:{self.metrics_port}",
                    *extra,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def cert(self, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logs()
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/v1/cert.pem", timeout=2
                ) as r:
                    return r.read()
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"no certificate within {timeout}s\n{self.logs()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _unseals_in(kube_api: Any, ctl: Controller, namespace: str, cert: bytes, value: str) -> None:
    """Create a SealedSecret in `namespace`; the Secret, status and event must follow."""
    from kubernetes import client

    from sealkit.certs import load_public_key
    from sealkit.model import seal_secret

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app", "namespace": namespace},
        "stringData": {"password": value},
    }
    api = client.CustomObjectsApi(kube_api)
    api.create_namespaced_custom_object(
        "bitnami.com",
        "v1alpha1",
        namespace,
        "sealedsecrets",
        seal_secret(secret, load_public_key(cert)),
    )
    core = client.CoreV1Api(kube_api)
    got = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and got is None:
        try:
            got = core.read_namespaced_secret("app", namespace)
        except client.exceptions.ApiException:
            time.sleep(0.3)
    assert got is not None, ctl.logs()
    assert base64.b64decode(got.data["password"]) == value.encode()
    status: dict[str, Any] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not status.get("conditions"):
        status = (
            api.get_namespaced_custom_object(
                "bitnami.com", "v1alpha1", namespace, "sealedsecrets", "app"
            ).get("status")
            or {}
        )
        time.sleep(0.3)
    assert status.get("conditions"), ctl.logs()
    assert status["conditions"][0]["status"] == "True", (status, ctl.logs())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(e.reason == "Unsealed" for e in core.list_namespaced_event(namespace).items):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"no Unsealed event in {namespace}\n{ctl.logs()}")


def _no_denials(ctl: Controller, *canaries: str) -> None:
    text = ctl.logs()
    # An HTTP 403 anywhere (not the digits of a timestamp or a port) means a missing rule.
    assert not re.search(r"(?<![\d,.:])403\b", text), text
    assert "forbidden" not in text.lower(), text
    for canary in canaries:
        assert canary not in text


def _metrics_of_a_real_run(ctl: Controller, namespace: str, canary: str) -> None:
    """The real controller's /metrics: upstream names, our extras, and no secret anywhere."""
    from prometheus_client.parser import text_string_to_metric_families

    text = ""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{ctl.metrics_port}/metrics", timeout=3) as r:
            text = r.read().decode()
        if "sealkit_key_sealedsecrets{" in text and 'name="app"' in text:
            break
        time.sleep(0.5)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert (
        samples[
            (
                "sealed_secrets_controller_condition_info",
                (
                    ("condition", "Synced"),
                    ("name", "app"),
                    ("namespace", namespace),
                    ("ss_app_kubernetes_io_instance", ""),
                ),
            )
        ]
        == 1.0
    ), text
    assert samples[("sealed_secrets_controller_unseal_requests_total", ())] >= 1, text
    assert samples[("leader_election_master_status", (("name", DEFAULT_LEASE_NAME),))] == 1.0, text
    assert "sealed_secrets_controller_build_info" in {n for n, _ in samples}, text
    usage = [v for (n, _), v in samples.items() if n == "sealkit_key_sealedsecrets"]
    assert usage == [1.0], text
    assert canary not in text
    assert base64.b64encode(canary.encode()).decode() not in text


def test_controller_runs_with_exactly_the_manifest_permissions(
    install: Callable[..., Installed], kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client

    installed = install(namespace)
    ctl = Controller(installed.kubeconfig, namespace, tmp_path / "controller.log")
    try:
        cert = ctl.cert()
        _unseals_in(kube_api, ctl, namespace, cert, "rbac-canary")
        lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(
            DEFAULT_LEASE_NAME, namespace
        )
        assert lease.spec.holder_identity.startswith("rbac-test")
        keys = client.CoreV1Api(kube_api).list_namespaced_secret(
            namespace, label_selector="sealedsecrets.bitnami.com/sealed-secrets-key=active"
        )
        assert len(keys.items) == 1
        _no_denials(ctl, "rbac-canary")
        _metrics_of_a_real_run(ctl, namespace, "rbac-canary")
    finally:
        ctl.stop()


@pytest.fixture
def tenant_namespace(kube_api: Any, namespace: str) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    name = f"{namespace[:50]}-tenant"
    core.create_namespace({"metadata": {"name": name, "labels": {"sealkit-test": "1"}}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def test_namespaced_roles_mode_unseals_in_tenant_namespaces_only(
    install: Callable[..., Installed],
    kube_api: Any,
    namespace: str,
    tenant_namespace: str,
    tmp_path: Path,
) -> None:
    from kubernetes import client

    installed = install(namespace, namespaced=True, tenants={"team-a": tenant_namespace})
    cluster_role = [d for d in installed.docs if d["kind"] == "ClusterRole"]
    assert [r["resources"] for r in cluster_role[0]["rules"]] == [["namespaces"]]
    # The ServiceAccount can no longer read Secrets cluster-wide...
    review = client.AuthorizationV1Api(kube_api).create_subject_access_review(
        {
            "spec": {
                "user": f"system:serviceaccount:{namespace}:{SA}",
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {"verb": "list", "resource": "secrets"},
            }
        }
    )
    assert review.status.allowed is False
    # ...and still does its job in its own namespace and the tenant namespace.
    ctl = Controller(
        installed.kubeconfig,
        namespace,
        tmp_path / "controller.log",
        f"--additional-namespaces={tenant_namespace}",
    )
    try:
        cert = ctl.cert()
        _unseals_in(kube_api, ctl, tenant_namespace, cert, "tenant-canary")
        _no_denials(ctl, "tenant-canary")
    finally:
        ctl.stop()
