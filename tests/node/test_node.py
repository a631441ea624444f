"""The stack's real node: kubelet + containerd + runc + CNI, running the project's pods.

Nothing here emulates the kubelet: every workload is a pod that containerd runs
from an image built here from the repository's Dockerfile. Order matters and is
the file order: the RBAC pods first (no cluster-wide controller is deployed yet,
so nothing else touches their namespaces), then `deploy/` itself.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.node.conftest import SEALKIT_IMAGE, apply, kubectl, pod_script, run_pod, wait_for

pytestmark = [pytest.mark.stack]

ROOT = Path(__file__).resolve().parents[2]
CONTROLLER_NS = "kube-system"
CONTROLLER = "sealed-secrets-controller"
LEASE = "sealed-secrets-controller"


def _json(stack: Any, *args: str) -> Any:
    return json.loads(kubectl(stack, *args, "-o", "json").stdout)


# -- the node itself ----------------------------------------------------------------------


def test_node_is_ready_with_the_built_kubelet_and_containerd(node_stack: Any) -> None:
    node = _json(node_stack, "get", "node", "devstack-node")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.36.3"
    assert info["containerRuntimeVersion"].startswith("containerd://2."), info
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == node_stack.node["node_ip"]


def test_node_namespace_has_no_default_route(node_stack: Any) -> None:
    box = node_stack.processes["node-box"].pid
    routes = subprocess.run(
        ["nsenter", f"--target={box}", "--net", "--", "ip", "-4", "route"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "default" not in routes, routes
    rules = subprocess.run(
        [
            "nsenter",
            f"--target={box}",
            "--net",
            "--",
            "nft",
            "list",
            "table",
            "inet",
            "sealkit_node_filter",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert node_stack.node["host_ip"] in rules


@pytest.fixture
def unrelayed_listener(node_stack: Any) -> Iterator[int]:
    """A TCP server of ours on the host veth address, on a port the stack does not relay."""
    srv = socket.socket()
    srv.bind((node_stack.node["host_ip"], 0))
    srv.listen(8)
    srv.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.sendall(b"reached\n")
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        srv.close()


NET_PROBE = """
import json, os, socket, urllib.request
out = {}
for name in os.environ["NAMES"].split(","):
    try:
        out[name] = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError as exc:
        out[name] = "error: " + type(exc).__name__
with urllib.request.urlopen("http://openbao.devstack.svc:8200/v1/sys/health", timeout=5) as r:
    out["openbao"] = r.status
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__
out["apiserver"] = connect("kubernetes.default.svc", 443)
out["postgresql"] = connect("postgresql.devstack.svc", 5432)
out["unrelayed"] = connect(os.environ["HOST_IP"], int(os.environ["PORT"]))
print(json.dumps(out))
"""


def test_pods_resolve_cluster_names_and_reach_only_the_relayed_host_ports(
    node_stack: Any, namespace: str, unrelayed_listener: int
) -> None:
    names = [
        "kubernetes.default.svc.cluster.local",
        "kubernetes.default",
        "kube-dns.kube-system.svc",
        "openbao.devstack.svc",
        "no-such.devstack.svc",
    ]
    phase, logs = run_pod(
        node_stack,
        pod_script(
            "net",
            namespace,
            NET_PROBE,
            env={
                "NAMES": ",".join(names),
                "HOST_IP": node_stack.node["host_ip"],
                "PORT": str(unrelayed_listener),
            },
        ),
    )
    assert phase == "Succeeded", logs
    got = json.loads(logs.strip().splitlines()[-1])
    assert got["kubernetes.default.svc.cluster.local"] == "10.0.0.1"
    assert got["kubernetes.default"] == "10.0.0.1"
    assert got["kube-dns.kube-system.svc"] == "10.0.0.10"
    assert got["openbao.devstack.svc"].startswith("10.0.0."), got
    assert got["no-such.devstack.svc"].startswith("error"), got
    assert got["openbao"] == 200
    assert got["apiserver"] == got["postgresql"] == "connected"
    # The guard drops it: our own listener on the host veth is not a relayed port.
    assert got["unrelayed"] in ("TimeoutError", "timeout"), got


# -- deploy/'s RBAC, as pods --------------------------------------------------------------


def _rehomed_deploy(stack: Any, tmp: Path, namespace: str, drop_rule: str | None) -> list[Any]:
    """deploy/ rendered by kustomize, moved into `namespace` (cluster-scoped names get a
    suffix), one replica watching only its namespace, with the stack's image. With
    `drop_rule` the ClusterRole loses the rule on that resource."""
    from tests.controller.test_deploy_rbac import _rehome

    out = kubectl(stack, "kustomize", str(ROOT / "devstack" / "overlays" / "controller")).stdout
    docs = [d for d in yaml.safe_load_all(out) if d and "proxy-users" not in d["metadata"]["name"]]
    crd = [d for d in docs if d["kind"] == "CustomResourceDefinition"]  # shared, kept after
    docs = (
        crd
        + _rehome(
            [
                d
                for d in docs
                if d["kind"]
                in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
            ],
            {CONTROLLER_NS: namespace},
            f"-{namespace}",
        )
        + [d for d in docs if d["kind"] == "Deployment"]
    )
    for d in docs:
        if d["kind"] == "Deployment":
            d["metadata"]["namespace"] = namespace
            d["spec"]["replicas"] = 1
            c = d["spec"]["template"]["spec"]["containers"][0]
            c["args"] = [*c["args"], "--all-namespaces=false", "--key-size=2048"]
        if drop_rule and d["kind"] == "ClusterRole":
            d["rules"] = [r for r in d["rules"] if drop_rule not in r["resources"]]
    return docs


def _delete_cluster_scoped(stack: Any, docs: list[Any]) -> None:
    for d in docs:
        if d["kind"].startswith("Cluster"):
            kubectl(
                stack,
                "delete",
                d["kind"].lower(),
                d["metadata"]["name"],
                "--wait=false",
                check=False,
            )


def _pods(stack: Any, namespace: str) -> list[Any]:
    return _json(
        stack,
        "-n",
        namespace,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=sealed-secrets-controller",
    )["items"]


def _ready(pod: Any) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _seal_and_wait(
    stack: Any, namespace: str, cert_pem: bytes, value: str, name: str = "app"
) -> None:
    from sealkit.certs import load_public_key
    from sealkit.model import seal_secret

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"password": value},
    }
    apply(stack, [seal_secret(secret, load_public_key(cert_pem))])

    def unsealed() -> bool:
        got = kubectl(
            stack,
            "-n",
            namespace,
            "get",
            "secret",
            name,
            "-o",
            "jsonpath={.data.password}",
            check=False,
        )
        return got.returncode == 0 and base64.b64decode(got.stdout) == value.encode()

    wait_for(unsealed, 60, f"Secret {namespace}/{name} from its SealedSecret")


def _proxy_cert(stack: Any, namespace: str, service: str = CONTROLLER) -> bytes:
    out = kubectl(
        stack,
        "get",
        "--raw",
        f"/api/v1/namespaces/{namespace}/services/http:{service}:http/proxy/v1/cert.pem",
        check=False,
    )
    return out.stdout.encode() if out.returncode == 0 else b""


def test_deploy_rbac_is_enough_for_the_pod(node_stack: Any, namespace: str, tmp_path: Path) -> None:
    docs = _rehomed_deploy(node_stack, tmp_path, namespace, drop_rule=None)
    docs += [
        d
        for d in yaml.safe_load_all(
            kubectl(
                node_stack, "kustomize", str(ROOT / "devstack" / "overlays" / "controller")
            ).stdout
        )
        if d and d["kind"] == "Service" and d["metadata"]["name"] == CONTROLLER
    ]
    for d in docs:
        if d["kind"] == "Service":
            d["metadata"]["namespace"] = namespace
    try:
        apply(node_stack, docs)
        wait_for(
            lambda: any(_ready(p) for p in _pods(node_stack, namespace)),
            120,
            "the controller pod to be Ready",
        )
        cert = wait_for(lambda: _proxy_cert(node_stack, namespace), 60, "/v1/cert.pem")
        _seal_and_wait(node_stack, namespace, cert, "rbac-pod-canary")
        logs = kubectl(node_stack, "-n", namespace, "logs", f"deployment/{CONTROLLER}").stdout
        assert "forbidden" not in logs.lower(), logs
        assert "rbac-pod-canary" not in logs
    finally:
        _delete_cluster_scoped(node_stack, docs)


def test_a_missing_rbac_rule_shows_in_the_pod(
    node_stack: Any, namespace: str, tmp_path: Path
) -> None:
    docs = _rehomed_deploy(node_stack, tmp_path, namespace, drop_rule="sealedsecrets")
    try:
        apply(node_stack, docs)

        def denied() -> str | None:
            pods = _pods(node_stack, namespace)
            if not pods:
                return None
            logs = kubectl(
                node_stack, "-n", namespace, "logs", pods[0]["metadata"]["name"], check=False
            ).stdout
            return (
                logs
                if "sealedsecrets" in logs and ("403" in logs or "forbidden" in logs.lower())
                else None
            )

        logs = wait_for(denied, 120, "the pod to log the denied SealedSecret list")
        assert logs
        # It never becomes Ready: readiness means caches synced, which it cannot do.
        assert not any(_ready(p) for p in _pods(node_stack, namespace))
    finally:
        _delete_cluster_scoped(node_stack, docs)


# -- deploy/ as shipped --------------------------------------------------------------------


def _lease_holder(stack: Any) -> str:
    lease = _json(stack, "-n", CONTROLLER_NS, "get", "lease", LEASE)
    return str(lease["spec"].get("holderIdentity") or "")


def test_deploy_runs_two_hardened_replicas_with_a_leader(node_stack: Any, deployed: float) -> None:
    pods = _pods(node_stack, CONTROLLER_NS)
    assert len(pods) == 2 and all(_ready(p) for p in pods), [p["status"] for p in pods]
    for pod in pods:
        spec = pod["spec"]
        assert spec["containers"][0]["image"] == SEALKIT_IMAGE
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    holder = wait_for(lambda: _lease_holder(node_stack), 30, "a Lease holder")
    assert any(holder.startswith(p["metadata"]["name"]) for p in pods), holder


def test_kubeseal_and_sealkit_fetch_the_cert_through_the_service_proxy(
    node_stack: Any, deployed: float, namespace: str, tmp_path: Path
) -> None:
    import os

    env = {**os.environ, "KUBECONFIG": node_stack.kubeconfig}
    real = subprocess.run(
        [node_stack.kubeseal, "--fetch-cert"], capture_output=True, text=True, env=env, timeout=60
    )
    assert real.returncode == 0, real.stderr
    ours = subprocess.run(
        [str(Path(sys.executable).parent / "sealkit"), "--fetch-cert"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ours.returncode == 0, ours.stderr
    assert real.stdout == ours.stdout and "BEGIN CERTIFICATE" in real.stdout
    secret = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": namespace},
            "stringData": {"password": "node-canary"},
        }
    )
    sealed = subprocess.run(
        [node_stack.kubeseal, "-o", "json"],
        input=secret,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert sealed.returncode == 0, sealed.stderr
    kubectl(node_stack, "apply", "-f", "-", stdin=sealed.stdout)

    def unsealed() -> bool:
        got = kubectl(
            node_stack,
            "-n",
            namespace,
            "get",
            "secret",
            "db",
            "-o",
            "jsonpath={.data.password}",
            check=False,
        )
        return got.returncode == 0 and base64.b64decode(got.stdout) == b"node-canary"

    wait_for(unsealed, 60, "the Secret unsealed by the pods")


def test_deleting_the_leader_pod_hands_over_within_the_lease(
    node_stack: Any, deployed: float, namespace: str
) -> None:
    holder = wait_for(lambda: _lease_holder(node_stack), 30, "a Lease holder")
    leader = next(
        p["metadata"]["name"]
        for p in _pods(node_stack, CONTROLLER_NS)
        if holder.startswith(p["metadata"]["name"])
    )
    t0 = time.monotonic()
    kubectl(node_stack, "-n", CONTROLLER_NS, "delete", "pod", leader, "--wait=false")
    new = wait_for(
        lambda: (h := _lease_holder(node_stack)) and not h.startswith(leader) and h,
        20,
        "another replica to take the Lease",
    )
    took = time.monotonic() - t0
    assert took < 15, f"takeover took {took:.1f}s (lease 15s)"
    cert = wait_for(lambda: _proxy_cert(node_stack, CONTROLLER_NS), 60, "/v1/cert.pem")
    _seal_and_wait(node_stack, namespace, cert, "after-failover", name="after")
    assert new


# -- the PostSync Job and the app, as pods -------------------------------------------------

DEMO_VAULT_TOKEN = "node-test-root-token"  # throwaway dev-mode token of the test's own OpenBao


def _platform(namespace: str) -> list[dict[str, Any]]:
    """OpenBao (dev mode) and PostgreSQL as pods in the test namespace, from the images
    the stack built for the demo, with their credentials from the unsealed Secret."""

    def secret_env(name: str, key: str) -> dict[str, Any]:
        return {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": "vault-bootstrap-inputs", "key": key}},
        }

    def workload(
        name: str, image: str, port: int, container: dict[str, Any], pod: dict[str, Any]
    ) -> list[dict[str, Any]]:
        labels = {"app.kubernetes.io/name": name}
        return [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "automountServiceAccountToken": False,
                            **pod,
                            "containers": [
                                {
                                    "name": name,
                                    "image": image,
                                    "imagePullPolicy": "Never",
                                    "ports": [{"containerPort": port}],
                                    **container,
                                }
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": labels, "ports": [{"port": port, "targetPort": port}]},
            },
        ]

    vault = workload(
        "vault",
        "localhost/sealkit/openbao:2.7.2",
        8200,
        {
            "args": ["server", "-dev", "-dev-listen-address=0.0.0.0:8200"],
            "env": [secret_env("BAO_DEV_ROOT_TOKEN_ID", "vault-token")],
            "readinessProbe": {
                "httpGet": {"path": "/v1/sys/health", "port": 8200},
                "periodSeconds": 2,
            },
        },
        {},
    )
    pg = workload(
        "postgresql",
        "localhost/sealkit/postgresql:15",
        5432,
        {
            "env": [
                {"name": "POSTGRES_USER", "value": "postgres"},
                secret_env("POSTGRES_PASSWORD", "pg-password"),
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
            ],
            "readinessProbe": {
                "exec": {"command": ["pg_isready", "-h", "127.0.0.1"]},
                "periodSeconds": 2,
            },
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
        },
        {
            "securityContext": {"runAsUser": 999, "fsGroup": 999},
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    )
    return vault + pg


def _bootstrap_job(stack: Any, namespace: str) -> list[dict[str, Any]]:
    """examples/vault-bootstrap as rendered by kustomize, moved into `namespace`."""
    out = kubectl(stack, "kustomize", str(ROOT / "examples" / "vault-bootstrap")).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    env = {
        "VAULT_ADDR": f"http://vault.{namespace}.svc:8200",
        "PGHOST": f"postgresql.{namespace}.svc",
        "WELCOME_NAMESPACE": namespace,
    }
    for d in docs:
        if d["kind"] == "ClusterRoleBinding":
            d["metadata"]["name"] += f"-{namespace}"
            for s in d["subjects"]:
                s["namespace"] = namespace
        else:
            d["metadata"]["namespace"] = namespace
        if d["kind"] == "Job":
            c = d["spec"]["template"]["spec"]["containers"][0]
            c["image"], c["imagePullPolicy"] = SEALKIT_IMAGE, "Never"
            for e in c["env"]:
                if e["name"] in env:
                    e["value"] = env[e["name"]]
    return docs


def _job_run(stack: Any, namespace: str, docs: list[dict[str, Any]]) -> str:
    kubectl(
        stack,
        "-n",
        namespace,
        "delete",
        "job",
        "vault-bootstrap",
        "--ignore-not-found",
        "--wait=true",
    )
    apply(stack, [d for d in docs if d["kind"] == "Job"])

    def finished() -> str | None:
        job = _json(stack, "-n", namespace, "get", "job", "vault-bootstrap")
        for c in job.get("status", {}).get("conditions", []):
            if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                return str(c["type"])
        return None

    outcome = wait_for(finished, 300, "the vault-bootstrap Job")
    logs = kubectl(stack, "-n", namespace, "logs", "job/vault-bootstrap", check=False).stdout
    assert outcome == "Complete", logs
    return logs


APP_CHECK = """
import json, os, urllib.request
with urllib.request.urlopen("http://welcome-message:8080/q/health/ready", timeout=5) as r:
    print(json.dumps({"ready": r.status}))
"""


def test_postsync_job_pod_configures_vault_and_the_app_pod_gets_db_credentials(
    node_stack: Any, deployed: float, namespace: str
) -> None:
    from devstack import images
    from devstack.deploy import ensure_images

    ensure_images(node_stack, images.demo_images())
    cert = wait_for(lambda: _proxy_cert(node_stack, CONTROLLER_NS), 60, "/v1/cert.pem")
    values = {
        "vault-token": DEMO_VAULT_TOKEN,
        "pg-password": "pg-node-canary-pw",
        "name-service-token": "name-node-canary",
    }
    from sealkit.certs import load_public_key
    from sealkit.model import seal_secret

    sealed = seal_secret(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vault-bootstrap-inputs", "namespace": namespace},
            "stringData": values,
        },
        load_public_key(cert),
    )
    job_docs = _bootstrap_job(node_stack, namespace)
    try:
        apply(
            node_stack,
            [sealed, *_platform(namespace), *[d for d in job_docs if d["kind"] != "Job"]],
        )
        for name in ("vault", "postgresql"):
            kubectl(
                node_stack,
                "-n",
                namespace,
                "rollout",
                "status",
                f"deployment/{name}",
                "--timeout=180s",
                timeout=200,
            )
        first = _job_run(node_stack, namespace, job_docs)
        assert "Apply complete:" in first and "Apply complete: 0 writes." not in first, first
        second = _job_run(node_stack, namespace, job_docs)
        assert "Apply complete: 0 writes." in second, second
        for text in (first, second):
            assert not any(v in text for v in values.values())
        # The app: its own projected token logs in, dynamic DB credentials connect.
        app = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "welcome-message", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "welcome-message"}},
                "template": {
                    "metadata": {"labels": {"app": "welcome-message"}},
                    "spec": {
                        "serviceAccountName": "welcome-message",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                        "containers": [
                            {
                                "name": "app",
                                "image": "localhost/sealkit/welcome-message:dev",
                                "imagePullPolicy": "Never",
                                "env": [
                                    {"name": k, "value": v}
                                    for k, v in {
                                        "VAULT_ADDR": f"http://vault.{namespace}.svc:8200",
                                        "VAULT_ROLE": "welcome-message",
                                        "VAULT_DB_CREDS_PATH": "database/creds/welcome-message",
                                        "VAULT_KV_PATH": "secret/data/myapps/welcome/config",
                                        "NAME_SERVICE_URL": f"http://name-generator.{namespace}.svc:8080",
                                        "DB_HOST": f"postgresql.{namespace}.svc",
                                        "DB_NAME": "postgres",
                                    }.items()
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/q/health/ready", "port": 8080},
                                    "periodSeconds": 2,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        }
        apply(
            node_stack,
            [
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "welcome-message", "namespace": namespace},
                },
                app,
            ],
        )
        kubectl(
            node_stack,
            "-n",
            namespace,
            "rollout",
            "status",
            "deployment/welcome-message",
            "--timeout=120s",
            timeout=140,
        )
        logs = kubectl(node_stack, "-n", namespace, "logs", "deployment/welcome-message").stdout
        assert "connected to PostgreSQL as a dynamic user" in logs, logs
        assert not any(v in logs for v in values.values())
    finally:
        _delete_cluster_scoped(node_stack, job_docs)
