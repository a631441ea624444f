"""The real kubeseal talks to the controller's HTTP API through the real apiserver's service
proxy, the controller being a real pod on the stack's node: `deploy/` applied into a namespace
of this module's own (`devstack.deploy.ControllerVariant`: one replica, watching only that
namespace), with two key Secrets put there before the pod starts. Every request goes kubeseal
-> apiserver -> service proxy -> the pod the kubelet runs, exactly like in a cluster.

The proxier Role of ``deploy/rbac.yaml`` is left out of the deployment: the last test grants it
itself, to check that an ordinary authenticated user needs it and that it is enough.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sealkit import UnsealError
from sealkit.crypto import b64decode, unseal
from sealkit.keys import generate_key_and_cert, key_secret_manifest
from sealkit.scopes import CLUSTER_WIDE_ANNOTATION

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "sealed-secrets-controller"
PROXIER = "sealed-secrets-controller-proxy-users"


def _key(name: str, age_days: int) -> tuple[Any, Any, dict[str, Any]]:
    key, cert = generate_key_and_cert(
        bits=2048, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)
    )
    return key, cert, key_secret_manifest(key, cert, name=name)


class Proxied:
    """The controller pod of this module and the tools to reach it."""

    def __init__(
        self,
        stack: Any,
        namespace: str,
        kubeseal: str,
        kubectl: str,
        keys: dict[str, tuple[Any, Any]],
    ) -> None:
        self.stack, self.namespace = stack, namespace
        self.kubeconfig, self.kubeseal_path, self.kubectl_path = (
            stack.kubeconfig,
            kubeseal,
            kubectl,
        )
        self.keys = keys  # name -> (private key, certificate)

    def cert_pem(self, name: str) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(self.keys[name][1].public_bytes(serialization.Encoding.PEM))

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

    def pod(self) -> dict[str, Any]:
        """The one serving pod: name and IP."""
        from devstack.deploy import serving_pods

        (pod,) = serving_pods(self.stack, self.namespace)
        return pod

    def metrics(self) -> str:
        """The pod's /metrics, through the apiserver's proxy to the metrics Service."""
        got = self.kubectl(
            "get",
            "--raw",
            f"/api/v1/namespaces/{self.namespace}/services/"
            f"http:{SERVICE}-metrics:metrics/proxy/metrics",
        )
        assert got.returncode == 0, got.stderr
        return got.stdout


@pytest.fixture(scope="module")
def proxied(stack: Any, kubeseal_path: str, kubectl_path: str) -> Iterator[Proxied]:
    """One controller pod per module (rollouts cost seconds), in a namespace of its own with
    upstream's default rate limits; deleted with its namespace when the module ends."""
    from devstack.deploy import ControllerVariant, running_variant
    from tests.conftest import require

    require(stack, "kube", "node", "kubectl")
    old_key, old_cert, old_secret = _key("sealed-secrets-keyold", 30)
    new_key, new_cert, new_secret = _key("sealed-secrets-keynew", 0)
    variant = ControllerVariant(
        namespace=f"t-proxy-{secrets.token_hex(3)}",
        args=("--all-namespaces=false", "--key-size=2048"),
        omit=(("Role", PROXIER), ("RoleBinding", PROXIER)),
    )
    with running_variant(stack, variant, key_secrets=[old_secret, new_secret]):
        yield Proxied(
            stack,
            variant.namespace,
            kubeseal_path,
            kubectl_path,
            {"old": (old_key, old_cert), "new": (new_key, new_cert)},
        )


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
    assert got.stdout.encode() == proxied.cert_pem("new")  # the newest key's certificate
    sealed = proxied.kubeseal("-o", "yaml", stdin=_secret(proxied.namespace))
    assert sealed.returncode == 0, sealed.stderr
    assert proxied.kubeseal("--validate", stdin=sealed.stdout).returncode == 0
    renamed = sealed.stdout.replace("name: db", "name: other")
    bad = proxied.kubeseal("--validate", stdin=renamed)
    assert bad.returncode == 1
    assert "unable to decrypt sealed secret: other" in bad.stderr
    text = proxied.metrics()
    assert 'code="409",method="post",path="/v1/verify"' in text
    assert 'code="200",method="get",path="/v1/cert.pem"' in text


def test_kubeseal_re_encrypt_through_the_service_proxy(proxied: Proxied, tmp_path: Path) -> None:
    secret = json.loads(_secret(proxied.namespace))
    secret["metadata"]["annotations"] = {"team": "a"}
    old_cert = tmp_path / "old.pem"
    old_cert.write_bytes(proxied.cert_pem("old"))
    sealed = proxied.kubeseal(
        "-o", "yaml", "--scope", "cluster-wide", "--cert", str(old_cert), stdin=json.dumps(secret)
    )
    assert sealed.returncode == 0, sealed.stderr
    out = proxied.kubeseal("--re-encrypt", "-o", "yaml", stdin=sealed.stdout)
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["kind"] == "SealedSecret" and doc["apiVersion"] == "bitnami.com/v1alpha1"
    assert doc["metadata"]["annotations"] == {CLUSTER_WIDE_ANNOTATION: "true"}
    blob = b64decode(doc["spec"]["encryptedData"]["password"])
    newer, older = proxied.keys["new"][0], proxied.keys["old"][0]
    assert unseal(blob, [newer], b"") == b"proxy-canary-value"
    with pytest.raises(UnsealError):  # re-encrypted for the newest key only
        unseal(blob, [older], b"")
    assert "proxy-canary-value" not in out.stdout
    # The re-encrypted object is accepted by the cluster as it is.
    applied = proxied.kubectl("apply", "-n", proxied.namespace, "-f", "-", stdin=out.stdout)
    assert applied.returncode == 0, applied.stderr


def test_rate_limit_applies_through_the_proxy(proxied: Proxied, kube_api: Any) -> None:
    """deploy/'s flags keep upstream's limit (--rate-limit 2 --rate-limit-burst 2)."""
    from kubernetes.client.exceptions import ApiException

    sealed = proxied.kubeseal("-o", "json", stdin=_secret(proxied.namespace))
    assert sealed.returncode == 0, sealed.stderr
    time.sleep(2)  # earlier tests of this module used the bucket; it refills in 1.5 s
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
