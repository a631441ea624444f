"""Hostile requests through the real apiserver's service proxy (issue 12).

As in test_http_proxy.py, the controller is a real pod on the stack's node (`deploy/` in a
namespace of this module's own) and the apiserver proxies to it. The attacker holds only the
proxier Role that ``deploy/rbac.yaml`` gives every authenticated user. What the server spends is
read where it lives: the pod's memory cgroup (from the host, which runs the node) and the
pod's own socket table.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from test_http_proxy import SERVICE, Proxied, _proxier_role

pytestmark = pytest.mark.stack

AS_USER = {"Impersonate-User": "mallory@example.com", "Impersonate-Group": "system:authenticated"}
BOMB = b"a: [" + b"1," * 499_000 + b"1]\n"


def _pod_field(proxied: Proxied, jsonpath: str) -> str:
    """One field of the controller pod, read with ``kubectl get -o jsonpath``."""
    got = proxied.kubectl(
        "-n", proxied.namespace, "get", "pod", proxied.pod()["name"], "-o", f"jsonpath={jsonpath}"
    )
    assert got.returncode == 0, got.stderr
    return str(got.stdout)


def _memory_cgroup(proxied: Proxied) -> Path:
    """The pod's memory cgroup (v1) on the host; the kubelet names it after the pod's UID."""
    uid = _pod_field(proxied, "{.metadata.uid}").strip()
    found = [
        p
        for p in Path("/sys/fs/cgroup/memory").glob("**/pod*")
        if p.name.replace("_", "-") == f"pod{uid}"
    ]
    assert len(found) == 1, found
    return found[0]


def _restarts(proxied: Proxied) -> str:
    return _pod_field(proxied, "{.status.containerStatuses[0].restartCount}")


def _established_to_api(proxied: Proxied) -> int:
    """TCP connections to the API port (8080) as the pod itself sees them."""
    script = (
        "import sys\n"
        "n = 0\n"
        "for f in ('/proc/net/tcp', '/proc/net/tcp6'):\n"
        "    for line in open(f).readlines()[1:]:\n"
        "        cols = line.split()\n"
        "        n += cols[1].endswith(':1F90') and cols[3] == '01'\n"
        "print(n)\n"
    )
    got = proxied.kubectl(
        "-n", proxied.namespace, "exec", proxied.pod()["name"], "--", "python3", "-c", script
    )
    assert got.returncode == 0, got.stderr
    return int(got.stdout)


def _grant_proxier(proxied: Proxied, kube_api: Any) -> None:
    applied = proxied.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": _proxier_role(proxied.namespace)}
        ),
    )
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # RBAC cache propagation
        if _proxy_post(kube_api, proxied.namespace, "/v1/cert.pem", None, "GET")[0] == 200:
            return
        time.sleep(0.3)
    raise AssertionError("the proxier role did not take effect")


def _proxy_post(
    kube_api: Any, namespace: str, path: str, body: bytes | None, method: str = "POST"
) -> tuple[int, bytes]:
    from kubernetes.client.exceptions import ApiException

    url = f"/api/v1/namespaces/{namespace}/services/http:{SERVICE}:http/proxy{path}"
    try:
        resp = kube_api.call_api(
            url,
            method,
            body=body,
            header_params={**AS_USER, "Content-Type": "application/yaml"},
            _preload_content=False,
            _request_timeout=60,
            auth_settings=["BearerToken"],
        )
        return resp[1] if isinstance(resp, tuple) else 200, b""
    except ApiException as exc:
        return exc.status, (exc.body or b"")[:200] if isinstance(exc.body, bytes) else b""


def test_yaml_bomb_through_the_proxy_is_a_cheap_400(proxied: Proxied, kube_api: Any) -> None:
    _grant_proxier(proxied, kube_api)
    cgroup = _memory_cgroup(proxied)
    restarts = _restarts(proxied)
    (cgroup / "memory.max_usage_in_bytes").write_text("0")  # reset the pod's peak
    base = int((cgroup / "memory.usage_in_bytes").read_text())
    started = time.monotonic()
    codes = [_proxy_post(kube_api, proxied.namespace, "/v1/verify", BOMB)[0] for _ in range(3)]
    assert codes == [400, 400, 400], codes
    assert time.monotonic() - started < 30
    # The server's share was +320 MB each before the event scan (deploy/'s limit is 256 Mi:
    # the kubelet would have restarted the container).
    peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
    assert peak - base < 60 * 1024 * 1024, (peak, base)
    assert _restarts(proxied) == restarts
    text = proxied.metrics()
    assert 'code="400",method="post",path="/v1/verify"' in text


def _slow_post(kube_api: Any, namespace: str) -> ssl.SSLSocket:
    """A POST through the proxy that announces 1,000 bytes and sends 10."""
    cfg = kube_api.configuration
    url = urlparse(cfg.host)
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    raw = socket.create_connection((url.hostname, url.port), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname=url.hostname)
    auth = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken") or ""
    headers = f"Authorization: {auth}\r\n" if auth else ""
    path = f"/api/v1/namespaces/{namespace}/services/http:{SERVICE}:http/proxy/v1/verify"
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\n{headers}"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        ).encode()
        + b'{"kind":"S'
    )
    return sock


def test_slow_bodies_through_the_proxy_leave_probes_answerable(
    proxied: Proxied, kube_api: Any
) -> None:
    """40 POSTs through the proxy announce 1,000 bytes and send 10. The apiserver holds them
    (it reads a proxied body before it connects to the pod), so our listener is not even
    touched; the probes (straight to the pod's IP, as the kubelet sends them) and kubeseal
    through the proxy keep answering while they are held."""
    import http.client

    held = [_slow_post(kube_api, proxied.namespace) for _ in range(40)]
    try:
        time.sleep(1)
        assert _established_to_api(proxied) <= 4
        for path in ("/healthz", "/readyz", "/v1/cert.pem"):
            conn = http.client.HTTPConnection(proxied.pod()["ip"], 8080, timeout=3)
            started = time.monotonic()
            conn.request("GET", path)
            assert conn.getresponse().status == 200, path
            assert time.monotonic() - started < 1
            conn.close()
        got = proxied.kubeseal("--fetch-cert")
        assert got.returncode == 0, got.stderr
    finally:
        for sock in held:
            sock.close()
