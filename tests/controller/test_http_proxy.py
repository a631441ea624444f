"""The real kubeseal talks to our HTTP API through the real apiserver's service proxy.

There is no kubelet in the test stack, so the "pod" behind the Service is simulated the way the
apiserver checks it: a Pod object whose status carries the pod IP, and an Endpoints object
pointing at it with a ``targetRef`` (the service proxy refuses addresses without one).
Endpoints refuse loopback, and test traffic may only go to loopback or to test hosts in
network namespaces we create, so the pod IP is a private "test host" (`devstack.netns`): a
netns joined to us by a veth pair, where a forwarder relays to our API server on our end of
the veth. Every request really goes kubeseal -> apiserver -> service proxy -> (netns
forwarder) -> our handler, exactly like in a cluster.

Also checks the user-facing Role from ``deploy/rbac.yaml`` by impersonating an ordinary
authenticated user.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.http_api import ApiOptions, ServerHandle, serve_api
from controller.keyring import KeyRing, entry_from_secret
from controller.metrics import Metrics
from sealkit.crypto import b64decode, unseal
from sealkit.keys import generate_key_and_cert, key_secret_manifest
from sealkit.scopes import CLUSTER_WIDE_ANNOTATION
from tests.controller._ctl import create_unscheduled_pod as _create_unscheduled_pod

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "sealed-secrets-controller"


def _entry(name: str, age_days: int) -> Any:
    import datetime as dt

    key, cert = generate_key_and_cert(
        bits=2048, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)
    )
    return entry_from_secret(key_secret_manifest(key, cert, name=name))


class Proxied:
    def __init__(
        self,
        handle: ServerHandle,
        ring: KeyRing,
        namespace: str,
        kubeconfig: str,
        kubeseal: str,
        kubectl: str,
        metrics: Metrics,
    ) -> None:
        self.handle, self.ring, self.namespace = handle, ring, namespace
        self.kubeconfig, self.kubeseal_path, self.kubectl_path = kubeconfig, kubeseal, kubectl
        self.metrics = metrics

    def kubeseal(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                self.kubeseal_path,
                "--kubeconfig",
                self.kubeconfig,
                "--controller-namespace",
                self.namespace,
                "--controller-name",
                SERVICE,
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_path, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def proxied(
    stack: Any, kube_api: Any, namespace: str, kubeseal_path: str, kubectl_path: str
) -> Iterator[Proxied]:
    from kubernetes import client

    from devstack.netns import require_private_host

    ring = KeyRing()
    ring.add(_entry("sealed-secrets-keyold", 30))
    metrics = Metrics()
    with require_private_host() as host:
        # Our server listens on our end of the veth; the apiserver connects to the netns
        # "test host" (pod_ip), whose forwarder relays back to us.
        handle = serve_api(
            f"{host.host_ip}:0",
            keys=ring,
            metrics=metrics,
            options=ApiOptions(read_timeout=10, write_timeout=10),
        )
        core = client.CoreV1Api(kube_api)
        try:
            ip, port = host.pod_ip, host.forward(handle.port)
            _create_unscheduled_pod(core, namespace, "controller-0")
            core.patch_namespaced_pod_status(
                "controller-0", namespace, {"status": {"podIP": ip, "podIPs": [{"ip": ip}]}}
            )
            core.create_namespaced_service(
                namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": SERVICE},
                    "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]},
                },
            )
            core.create_namespaced_endpoints(
                namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": SERVICE},
                    "subsets": [
                        {
                            "addresses": [
                                {
                                    "ip": ip,
                                    "targetRef": {
                                        "kind": "Pod",
                                        "name": "controller-0",
                                        "namespace": namespace,
                                    },
                                }
                            ],
                            "ports": [{"name": "http", "port": port}],
                        }
                    ],
                },
            )
            yield Proxied(
                handle, ring, namespace, stack.kubeconfig, kubeseal_path, kubectl_path, metrics
            )
        finally:
            handle.shutdown()


def _secret(namespace: str, name: str = "db") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {"password": "proxy-canary-value"},
        }
    )


def test_kubeseal_fetch_cert_seal_validate_through_the_service_proxy(proxied: Proxied) -> None:
    got = proxied.kubeseal("--fetch-cert")
    assert got.returncode == 0, got.stderr
    assert got.stdout.encode() == proxied.ring.latest().certificate_pem  # type: ignore[union-attr]
    sealed = proxied.kubeseal("-o", "yaml", stdin=_secret(proxied.namespace))
    assert sealed.returncode == 0, sealed.stderr
    assert proxied.kubeseal("--validate", stdin=sealed.stdout).returncode == 0
    renamed = sealed.stdout.replace("name: db", "name: other")
    bad = proxied.kubeseal("--validate", stdin=renamed)
    assert bad.returncode == 1
    assert "unable to decrypt sealed secret: other" in bad.stderr
    text = proxied.metrics.exposition().decode()
    assert 'code="409",method="post",path="/v1/verify"' in text
    assert 'code="200",method="get",path="/v1/cert.pem"' in text


def test_kubeseal_re_encrypt_through_the_service_proxy(proxied: Proxied) -> None:
    secret = json.loads(_secret(proxied.namespace))
    secret["metadata"]["annotations"] = {"team": "a"}
    sealed = proxied.kubeseal("-o", "yaml", "--scope", "cluster-wide", stdin=json.dumps(secret))
    assert sealed.returncode == 0, sealed.stderr
    newer = _entry("sealed-secrets-keynew", 0)
    proxied.ring.add(newer)
    out = proxied.kubeseal("--re-encrypt", "-o", "yaml", stdin=sealed.stdout)
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["kind"] == "SealedSecret" and doc["apiVersion"] == "bitnami.com/v1alpha1"
    assert doc["metadata"]["annotations"] == {CLUSTER_WIDE_ANNOTATION: "true"}
    blob = b64decode(doc["spec"]["encryptedData"]["password"])
    assert unseal(blob, [newer.private_key], b"") == b"proxy-canary-value"
    assert "proxy-canary-value" not in out.stdout
    # The re-encrypted object is accepted by the cluster as it is.
    applied = proxied.kubectl("apply", "-n", proxied.namespace, "-f", "-", stdin=out.stdout)
    assert applied.returncode == 0, applied.stderr


def test_rate_limit_applies_through_the_proxy(proxied: Proxied, kube_api: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    sealed = proxied.kubeseal("-o", "json", stdin=_secret(proxied.namespace))
    assert sealed.returncode == 0, sealed.stderr
    path = f"/api/v1/namespaces/{proxied.namespace}/services/http:{SERVICE}:http/proxy/v1/verify"
    codes: list[int] = []
    headers: dict[str, str] = {}
    for _ in range(6):  # back to back: well inside one second
        try:
            kube_api.call_api(
                path,
                "POST",
                body=json.loads(sealed.stdout),
                header_params={"Content-Type": "application/json"},
                _preload_content=False,
                _request_timeout=10,
            )
            codes.append(200)
        except ApiException as exc:
            codes.append(exc.status)
            headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    # The apiserver appends the caller's address to X-Forwarded-For: one client, one bucket.
    assert codes[:3] == [200, 200, 200], codes
    assert 429 in codes[3:], codes
    assert headers.get("x-ratelimit-limit") == "3" and "retry-after" in headers, headers


def _proxier_role(namespace: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()) if d]
    picked = [d for d in docs if d["metadata"]["name"] == "sealed-secrets-controller-proxy-users"]
    assert {d["kind"] for d in picked} == {"Role", "RoleBinding"}
    for d in picked:
        d["metadata"]["namespace"] = namespace
    return picked


def test_users_reach_cert_and_verify_with_the_proxier_role_only(proxied: Proxied) -> None:
    as_user = ("--as", "alice@example.com", "--as-group", "system:authenticated")
    denied = proxied.kubeseal(*as_user, "--fetch-cert")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    applied = proxied.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": _proxier_role(proxied.namespace)}
        ),
    )
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 10
    got = proxied.kubeseal(*as_user, "--fetch-cert")
    while got.returncode != 0 and time.monotonic() < deadline:  # RBAC cache propagation
        time.sleep(0.3)
        got = proxied.kubeseal(*as_user, "--fetch-cert")
    assert got.returncode == 0, got.stderr
    sealed = proxied.kubeseal(*as_user, "-o", "yaml", stdin=_secret(proxied.namespace))
    assert sealed.returncode == 0, sealed.stderr
    assert proxied.kubeseal(*as_user, "--validate", stdin=sealed.stdout).returncode == 0
    # The role grants the proxy and nothing else: no Secrets, no other Service.
    secrets = proxied.kubectl(*as_user, "get", "secrets", "-n", proxied.namespace)
    assert secrets.returncode != 0 and "forbidden" in secrets.stderr.lower()
