"""Hostile requests through the real apiserver's service proxy (issue 12).

As in test_http_proxy.py, our API listens on our end of a veth pair and the apiserver proxies
to a "pod IP" in a network namespace of our own. The attacker holds only the proxier Role that
``deploy/rbac.yaml`` gives every authenticated user.
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


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


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
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS of this process
    base = _rss_kb()
    started = time.monotonic()
    codes = [_proxy_post(kube_api, proxied.namespace, "/v1/verify", BOMB)[0] for _ in range(3)]
    assert codes == [400, 400, 400], codes
    assert time.monotonic() - started < 30
    # This process also builds the three 1 MB request bodies; the server's share was +320 MB
    # each before the event scan.
    assert _peak_kb() - base < 60 * 1024
    text = proxied.metrics.exposition().decode()
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
    (it reads a proxied body before it connects to us), so our listener is not even touched;
    the probes and kubeseal through the proxy keep answering while they are held."""
    import http.client

    held = [_slow_post(kube_api, proxied.namespace) for _ in range(40)]
    try:
        time.sleep(1)
        assert proxied.handle.open_connections <= 4
        for path in ("/healthz", "/readyz", "/v1/cert.pem"):
            conn = http.client.HTTPConnection(proxied.handle.host, proxied.handle.port, timeout=3)
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
