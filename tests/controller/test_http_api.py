"""The API server over real sockets, with real RSA keys in a real `KeyRing`.

The API needs no apiserver (it only reads the key ring), so these run everywhere; the
service-proxy path is covered by the deploy tests.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.http_api import ApiOptions, parse_listen_addr, serve_api, serve_metrics
from controller.keyring import KeyRing, entry_from_secret
from controller.metrics import Metrics
from sealkit.crypto import b64decode, unseal
from sealkit.keys import generate_key_and_cert, key_secret_manifest
from sealkit.model import seal_secret
from sealkit.scopes import CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, Scope, label_for

PLAIN = "hunter2-plaintext-canary"


def _entry(name: str, days_ago: int) -> Any:
    import datetime as dt

    key, cert = generate_key_and_cert(
        bits=2048, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    )
    return entry_from_secret(key_secret_manifest(key, cert, name=name))


@pytest.fixture(scope="module")
def entries() -> tuple[Any, Any]:
    return _entry("sealed-secrets-keyold", 40), _entry("sealed-secrets-keynew", 1)


@pytest.fixture
def ring(entries: tuple[Any, Any]) -> KeyRing:
    r = KeyRing()
    for e in entries:
        r.add(e)
    return r


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(revision="test")


class Api:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.handle.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def post(self, path: str, body: bytes, client: str = "") -> tuple[int, dict[str, str], bytes]:
        # A fresh X-Forwarded-For per call keeps tests clear of the rate limiter.
        xff = client or f"10.1.{time.monotonic_ns() % 250}.{time.monotonic_ns() % 251}"
        return self.request("POST", path, body, {"X-Forwarded-For": xff})


@pytest.fixture
def api(ring: KeyRing, metrics: Metrics) -> Iterator[Api]:
    handle = serve_api(
        "127.0.0.1:0",
        keys=ring,
        metrics=metrics,
        options=ApiOptions(rate_limit=1000, rate_limit_burst=1000),
    )
    try:
        yield Api(handle)
    finally:
        handle.shutdown()


def _sealed(
    ring: KeyRing,
    *,
    name: str = "db",
    namespace: str = "shop",
    scope: Scope | None = None,
    template_data: dict[str, Any] | None = None,
    entry: Any = None,
) -> dict[str, Any]:
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "shop"}},
        "stringData": {"password": PLAIN, "user": "admin"},
    }
    key = (entry or ring.latest()).public_key
    ss = seal_secret(secret, key, scope=scope)
    if template_data is not None:
        ss["spec"]["template"]["data"] = template_data
    return ss


def _open(ss: dict[str, Any], entry: Any, key: str = "password") -> bytes:
    meta = ss["metadata"]
    from sealkit.scopes import scope_of

    label = label_for(scope_of(meta), meta.get("namespace"), meta.get("name"))
    return unseal(b64decode(ss["spec"]["encryptedData"][key]), [entry.private_key], label)


# -- health, readiness, cert ----------------------------------------------------------------
def test_healthz(api: Api) -> None:
    status, headers, body = api.request("GET", "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    status, _, body = api.request("HEAD", "/healthz")
    assert (status, body) == (200, b"")


def test_readyz_follows_the_callable_not_leadership(ring: KeyRing) -> None:
    state = {"ready": False}
    handle = serve_api("127.0.0.1:0", keys=ring, ready=lambda: state["ready"])
    try:
        api = Api(handle)
        assert api.request("GET", "/readyz")[0] == 503
        state["ready"] = True
        assert api.request("GET", "/readyz")[:3:2] == (200, b"ok\n")
    finally:
        handle.shutdown()


def test_cert_is_the_newest(api: Api, entries: tuple[Any, Any]) -> None:
    status, headers, body = api.request("GET", "/v1/cert.pem")
    assert status == 200
    assert headers["content-type"] == "application/x-pem-file"
    assert body == entries[1].certificate_pem


def test_no_keys_means_500_cannot_get_certificate() -> None:
    handle = serve_api("127.0.0.1:0", keys=KeyRing())
    try:
        api = Api(handle)
        assert api.request("GET", "/v1/cert.pem")[::2] == (500, b"cannot get certificate\n")
        assert api.request("GET", "/readyz")[0] == 503
        ss = {
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": {"name": "a", "namespace": "b"},
            "spec": {"encryptedData": {}},
        }
        assert api.post("/v1/rotate", json.dumps(ss).encode())[0] == 500
    finally:
        handle.shutdown()


def test_unknown_path_is_404(api: Api) -> None:
    assert api.request("GET", "/metrics")[0] == 404
    assert api.request("GET", "/v1/cert.pem/../../etc/passwd")[0] == 404


# -- verify ----------------------------------------------------------------------------------
def test_verify_opens_json_and_yaml(api: Api, ring: KeyRing, entries: tuple[Any, Any]) -> None:
    ss = _sealed(ring)
    assert api.post("/v1/verify", json.dumps(ss).encode())[::2] == (200, b"")
    assert api.post("/v1/verify", yaml.safe_dump(ss).encode())[0] == 200
    # Sealed with the old key: still opens.
    old = _sealed(ring, entry=entries[0], scope=Scope.CLUSTER_WIDE)
    assert api.post("/v1/verify", json.dumps(old).encode())[0] == 200


def test_verify_409_when_it_does_not_open(api: Api, ring: KeyRing) -> None:
    ss = _sealed(ring)
    renamed = json.loads(json.dumps(ss))
    renamed["metadata"]["name"] = "other"  # strict: the label no longer matches
    assert api.post("/v1/verify", json.dumps(renamed).encode())[::2] == (409, b"")
    tampered = json.loads(json.dumps(ss))
    blob = bytearray(base64.b64decode(tampered["spec"]["encryptedData"]["user"]))
    blob[-1] ^= 1
    tampered["spec"]["encryptedData"]["user"] = base64.b64encode(bytes(blob)).decode()
    assert api.post("/v1/verify", json.dumps(tampered).encode())[0] == 409
    garbage = json.loads(json.dumps(ss))
    garbage["spec"]["encryptedData"]["user"] = "not base64 !!"
    assert api.post("/v1/verify", json.dumps(garbage).encode())[0] == 409
    stranger = _sealed(ring, entry=_entry("sealed-secrets-keyx", 0))
    assert api.post("/v1/verify", json.dumps(stranger).encode())[0] == 409


def test_verify_label_comes_from_outer_metadata(api: Api, ring: KeyRing) -> None:
    # Sealed cluster-wide, but the outer scope annotation was removed: strict label, no open.
    ss = _sealed(ring, scope=Scope.CLUSTER_WIDE)
    ss["metadata"].pop("annotations")
    assert CLUSTER_WIDE_ANNOTATION in ss["spec"]["template"]["metadata"]["annotations"]
    assert api.post("/v1/verify", json.dumps(ss).encode())[0] == 409


# -- rotate ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", [Scope.STRICT, Scope.NAMESPACE_WIDE, Scope.CLUSTER_WIDE])
def test_rotate_reseals_with_newest_key_keeping_scope(
    api: Api, ring: KeyRing, entries: tuple[Any, Any], scope: Scope
) -> None:
    old, new = entries
    ss = _sealed(ring, entry=old, scope=scope)
    status, headers, body = api.post("/v1/rotate", json.dumps(ss).encode())
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert b"\n" not in body and b": " not in body  # compact
    out = json.loads(body)
    assert "apiVersion" not in out and "kind" not in out
    assert out["metadata"]["creationTimestamp"] is None
    assert out["spec"]["template"]["metadata"]["creationTimestamp"] is None
    assert out["metadata"]["name"] == "db" and out["metadata"]["namespace"] == "shop"
    marker = {
        Scope.CLUSTER_WIDE: CLUSTER_WIDE_ANNOTATION,
        Scope.NAMESPACE_WIDE: NAMESPACE_WIDE_ANNOTATION,
    }.get(scope)
    assert out["metadata"].get("annotations", {}) == ({marker: "true"} if marker else {})
    assert set(out["spec"]["encryptedData"]) == {"password", "user"}
    assert _open(out, new) == PLAIN.encode()
    with pytest.raises(Exception):  # noqa: B017 - any UnsealError subclass
        _open(out, old)
    # The rotated object verifies, also as a full SealedSecret.
    full = {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", **out}
    assert api.post("/v1/verify", json.dumps(full).encode())[0] == 200


def test_rotate_outer_metadata_wins(
    api: Api, ring: KeyRing, entries: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    ss = _sealed(ring, entry=entries[0])
    # A template trying to escalate: another name, namespace and cluster-wide scope.
    ss["spec"]["template"]["metadata"] = {
        "name": "victim",
        "namespace": "kube-system",
        "annotations": {CLUSTER_WIDE_ANNOTATION: "true"},
        "labels": {"sneaky": "yes"},
    }
    ss["metadata"]["labels"] = {"team": "a"}
    ss["metadata"]["uid"] = "1234"
    ss["metadata"]["resourceVersion"] = "99"
    ss["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "note": "kept",
    }
    ss["spec"]["template"]["type"] = "kubernetes.io/basic-auth"
    ss["spec"]["template"]["immutable"] = True
    with caplog.at_level(logging.WARNING, logger="controller.http_api"):
        status, _, body = api.post("/v1/rotate", json.dumps(ss).encode())
    assert status == 200, body
    out = json.loads(body)
    tmeta = out["spec"]["template"]["metadata"]
    assert tmeta == {
        "name": "db",
        "namespace": "shop",
        "creationTimestamp": None,
        "labels": {"team": "a"},
        "annotations": {"note": "kept"},
    }
    assert "annotations" not in out["metadata"]  # still strict
    assert out["spec"]["template"]["type"] == "kubernetes.io/basic-auth"
    assert out["spec"]["template"]["immutable"] is True
    assert _open(out, entries[1]) == PLAIN.encode()
    assert any("metadata wins" in r.getMessage() for r in caplog.records)


def test_rotate_409_when_it_does_not_open(api: Api, ring: KeyRing) -> None:
    ss = _sealed(ring)
    ss["metadata"]["namespace"] = "elsewhere"
    status, _, body = api.post("/v1/rotate", json.dumps(ss).encode())
    assert status == 409 and body == b""


# -- no decryption oracle ---------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/v1/verify", "/v1/rotate"])
def test_templates_are_never_rendered(
    api: Api, ring: KeyRing, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    templates = {
        "t1": "{{ .password }}",
        "t2": "{{ .password | b64enc }}",
        "t3": '{{ index . "user" }}',
        "t4": "{{ fail .password }}",
        "t5": '{{ .password | printf "%s" }}',
    }
    ss = _sealed(ring, template_data=templates)
    with caplog.at_level(logging.DEBUG):
        status, headers, body = api.post(path, json.dumps(ss).encode())
    assert status == 200
    b64 = base64.b64encode(PLAIN.encode())
    for needle in (PLAIN.encode(), b64, b64.rstrip(b"=")):
        assert needle not in body
        assert needle.decode() not in caplog.text
        assert needle.decode() not in json.dumps(headers)
    if path == "/v1/rotate":
        assert json.loads(body)["spec"]["template"]["data"] == templates


# -- bad input -------------------------------------------------------------------------------
def _bad_bodies(ring: KeyRing) -> list[tuple[str, bytes]]:
    ss = _sealed(ring)
    doc = yaml.safe_dump(ss)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {}}
    no_meta = {k: v for k, v in ss.items() if k != "metadata"}
    bad_enc = json.loads(json.dumps(ss))
    bad_enc["spec"]["encryptedData"] = {"a": 1}
    str_enc = json.loads(json.dumps(ss))
    str_enc["spec"]["encryptedData"] = "oops"
    wrong_api = dict(ss, apiVersion="bitnami.com/v1")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    return [
        ("empty", b""),
        ("whitespace", b"  \n"),
        ("garbage", b"\x00\x01\x02 not yaml: [}"),
        ("truncated-json", b'{"apiVersion": "bitnami.com/v1alpha1", "kind": '),
        ("not-utf8", b"\xff\xfe\xfa"),
        ("multi-doc-yaml", (doc + "---\n" + doc).encode()),
        ("multi-doc-json", (json.dumps(ss) + "\n" + json.dumps(ss)).encode()),
        ("list", json.dumps([ss]).encode()),
        ("scalar", b"42"),
        ("secret-kind", json.dumps(secret).encode()),
        ("k8s-list", json.dumps({"apiVersion": "v1", "kind": "List", "items": [ss]}).encode()),
        ("wrong-apiversion", json.dumps(wrong_api).encode()),
        ("no-metadata", json.dumps(no_meta).encode()),
        ("no-spec", json.dumps({**ss, "spec": None}).encode()),
        ("enc-not-strings", json.dumps(bad_enc).encode()),
        ("enc-not-map", json.dumps(str_enc).encode()),
        ("alias-bomb", bomb.encode()),
        ("deep-json", b"[" * 100000 + b"]" * 100000),
        ("deep-yaml", b"a: " + b"[" * 50000),
    ]


@pytest.mark.parametrize("path", ["/v1/verify", "/v1/rotate"])
def test_bad_bodies_get_4xx_never_a_traceback(api: Api, ring: KeyRing, path: str) -> None:
    for label, body in _bad_bodies(ring):
        status, _, resp = api.post(path, body)
        assert 400 <= status < 500, (label, status, resp)
        assert b"Traceback" not in resp and len(resp) < 200, label


@pytest.mark.parametrize("path", ["/v1/verify", "/v1/rotate"])
def test_oversized_bodies_get_413(ring: KeyRing, path: str) -> None:
    handle = serve_api(
        "127.0.0.1:0",
        keys=ring,
        options=ApiOptions(rate_limit=1000, rate_limit_burst=1000, max_body_bytes=64 * 1024),
    )
    try:
        api = Api(handle)
        huge = json.dumps(_sealed(ring) | {"padding": "x" * 100_000}).encode()
        assert api.post(path, huge)[0] == 413
        # Announced length over the limit: refused before reading anything.
        sock = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 30}\r\n\r\n".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
        sock.close()
        # Chunked bodies are counted too.
        sock = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"y" * 32768
        for _ in range(3):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
        sock.close()
        assert api.request("GET", "/healthz")[0] == 200
    finally:
        handle.shutdown()


def test_chunked_body_within_limit_is_accepted(api: Api, ring: KeyRing) -> None:
    body = json.dumps(_sealed(ring)).encode()
    sock = socket.create_connection(("127.0.0.1", api.handle.port), timeout=5)
    sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(0, len(body), 1000):
        part = body[i : i + 1000]
        sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    sock.sendall(b"0\r\n\r\n")
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
    sock.close()


def test_slow_client_is_cut_off_by_the_read_timeout(ring: KeyRing) -> None:
    handle = serve_api("127.0.0.1:0", keys=ring, options=ApiOptions(read_timeout=0.5))
    try:
        sock = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
        sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed without a response
        assert time.monotonic() - started < 3
        sock.close()
    finally:
        handle.shutdown()


# -- rate limit ------------------------------------------------------------------------------
def test_rate_limit_per_client_and_path(ring: KeyRing, metrics: Metrics) -> None:
    # Defaults: 2/s, burst 2. The test client is a trusted proxy here, so X-Forwarded-For
    # names the client (as the apiserver's service proxy does with --trusted-proxies).
    # The limiter's clock moves only when the test says so: on a loaded machine the requests
    # below can take longer than one refill interval (0.5 s), which made this test flaky.
    now = [1000.0]
    handle = serve_api(
        "127.0.0.1:0",
        keys=ring,
        metrics=metrics,
        options=ApiOptions(trusted_proxies=("127.0.0.1/32",)),
        clock=lambda: now[0],
    )
    try:
        api = Api(handle)
        body = json.dumps(_sealed(ring)).encode()
        codes = [api.post("/v1/verify", body, client="192.0.2.1")[0] for _ in range(3)]
        assert codes == [200, 200, 200]
        status, headers, _ = api.post("/v1/verify", body, client="192.0.2.1")
        assert status == 429
        assert headers["x-ratelimit-limit"] == "3"
        assert headers["x-ratelimit-remaining"] == "0"
        assert int(headers["x-ratelimit-reset"]) >= 1
        assert int(headers["retry-after"]) >= 1
        # Other path, other client: own buckets. The nearest X-Forwarded-For hop is the client.
        assert api.post("/v1/rotate", body, client="192.0.2.1")[0] == 200
        assert api.post("/v1/verify", body, client="192.0.2.2")[0] == 200
        assert api.post("/v1/verify", body, client="spoofed, 192.0.2.1")[0] == 429
        # The certificate and health endpoints are never limited.
        assert all(api.request("GET", "/v1/cert.pem")[0] == 200 for _ in range(10))
        now[0] += 0.6  # one token back at 2/s
        assert api.post("/v1/verify", body, client="192.0.2.1")[0] == 200
        assert api.post("/v1/verify", body, client="192.0.2.1")[0] == 429
        text = metrics.exposition().decode()
        assert 'code="429",method="post",path="/v1/verify"' in text
    finally:
        handle.shutdown()


def test_peer_address_is_the_client_without_forwarded_for(ring: KeyRing) -> None:
    handle = serve_api(
        "127.0.0.1:0",
        keys=ring,
        options=ApiOptions(rate_limit=1, rate_limit_burst=0),
        clock=lambda: 1000.0,  # frozen: the second request is refused however slow the first
    )
    try:
        api = Api(handle)
        body = json.dumps(_sealed(ring)).encode()
        assert api.request("POST", "/v1/verify", body)[0] == 200
        assert api.request("POST", "/v1/verify", body)[0] == 429
    finally:
        handle.shutdown()


# -- metrics server --------------------------------------------------------------------------
def test_metrics_server_serves_only_metrics_without_secrets(
    api: Api, ring: KeyRing, metrics: Metrics
) -> None:
    ss = _sealed(ring, template_data={"t": "{{ .password }}"})
    api.post("/v1/verify", json.dumps(ss).encode())
    api.post("/v1/rotate", json.dumps(ss).encode())
    api.request("GET", "/v1/cert.pem")
    metrics.set_condition("shop", "db", True)
    metrics.set_key_usage(ring.usage_counts())
    handle = serve_metrics("127.0.0.1:0", metrics=metrics)
    try:
        m = Api(handle)
        status, headers, body = m.request("GET", "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=")
        text = body.decode()
        for name in (
            "sealed_secrets_controller_build_info",
            "sealed_secrets_controller_unseal_requests_total",
            "sealed_secrets_controller_condition_info",
            "sealed_secrets_controller_http_requests_total",
            "sealed_secrets_controller_http_request_duration_seconds_bucket",
            "sealkit_key_sealedsecrets",
        ):
            assert name in text
        assert 'path="/v1/rotate"' in text
        assert PLAIN not in text and base64.b64encode(PLAIN.encode()).decode() not in text
        for value in ss["spec"]["encryptedData"].values():
            assert value[:40] not in text
        assert m.request("GET", "/healthz")[0] == 404
        assert m.request("GET", "/v1/cert.pem")[0] == 404
    finally:
        handle.shutdown()


def test_parse_listen_addr() -> None:
    assert parse_listen_addr(":8080") == ("", 8080)
    assert parse_listen_addr("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen_addr("[::1]:9") == ("::1", 9)
    for bad in ("8080", "host:", "h:99999", "h:x"):
        with pytest.raises(ValueError):
            parse_listen_addr(bad)


def test_connection_cap_answers_503_and_recovers(ring: KeyRing) -> None:
    handle = serve_api(
        "127.0.0.1:0", keys=ring, options=ApiOptions(max_connections=2, read_timeout=5)
    )
    try:
        idle = [socket.create_connection(("127.0.0.1", handle.port), timeout=5) for _ in range(2)]
        time.sleep(0.3)  # both are now held by handler threads waiting for a request line
        extra = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
        assert extra.recv(100).startswith(b"HTTP/1.1 503")
        extra.close()
        for s in idle:
            s.close()
        _wait_ok = time.monotonic() + 5
        while time.monotonic() < _wait_ok:
            try:
                if Api(handle).request("GET", "/healthz")[0] == 200:
                    break
            except (ConnectionError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        assert Api(handle).request("GET", "/healthz")[0] == 200
    finally:
        handle.shutdown()


def test_default_address_listens_on_ipv4_and_ipv6(ring: KeyRing) -> None:
    handle = serve_api(":0", keys=ring)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        if socket.has_dualstack_ipv6():
            conn6 = http.client.HTTPConnection("::1", handle.port, timeout=5)
            conn6.request("GET", "/healthz")
            assert conn6.getresponse().status == 200
    finally:
        handle.shutdown()


# -- property: whatever the body, the outcome is a 2xx/4xx decision, never an exception --------
_json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _mutated_sealed(draw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": "a", "namespace": "b"},
        "spec": {"encryptedData": {"k": "AgB="}, "template": {"metadata": {"name": "a"}}},
    }
    for path in draw(
        st.lists(
            st.sampled_from(
                [
                    ("metadata",),
                    ("metadata", "name"),
                    ("metadata", "namespace"),
                    ("metadata", "annotations"),
                    ("spec",),
                    ("spec", "encryptedData"),
                    ("spec", "encryptedData", "k"),
                    ("spec", "template"),
                    ("spec", "template", "metadata"),
                    ("spec", "template", "data"),
                    ("spec", "data"),
                    ("kind",),
                ]
            ),
            max_size=3,
        )
    ):
        node = base
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = draw(_json)
    return base


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_body_is_a_decision_never_a_crash(data: Any, entries: tuple[Any, Any]) -> None:
    from controller.http_api import (
        BadRequest,
        NotOpenable,
        parse_sealed_secret,
        rotate_sealed_secret,
        verify_sealed_secret,
    )

    kind = data.draw(st.sampled_from(["bytes", "json", "sealed"]))
    if kind == "bytes":
        body = data.draw(st.binary(max_size=200))
    elif kind == "json":
        body = json.dumps(data.draw(_json)).encode()
    else:
        doc = _mutated_sealed(data.draw)
        body = (json.dumps(doc) if data.draw(st.booleans()) else yaml.safe_dump(doc)).encode()
    keys = [e.private_key for e in entries]
    try:
        sealed = parse_sealed_secret(body)
    except BadRequest as exc:
        assert 400 <= exc.status < 500
        return
    assert isinstance(verify_sealed_secret(sealed, keys), bool)
    try:
        out, _ = rotate_sealed_secret(sealed, keys, entries[1].public_key)
    except (BadRequest, NotOpenable):
        return
    json.dumps(out)  # always serialisable


def test_trickling_client_is_cut_off_by_the_request_deadline(ring: KeyRing) -> None:
    # Each byte arrives well within the timeout; the request as a whole does not.
    handle = serve_api("127.0.0.1:0", keys=ring, options=ApiOptions(read_timeout=1.0))
    try:
        sock = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
        started = time.monotonic()
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            sock.settimeout(0.25)
            try:
                if sock.recv(100) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed
        assert time.monotonic() - started < 3
        sock.close()
        assert Api(handle).request("GET", "/healthz")[0] == 200
    finally:
        handle.shutdown()


def test_keep_alive_connection_serves_many_requests(api: Api, ring: KeyRing) -> None:
    body = json.dumps(_sealed(ring)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", api.handle.port, timeout=10)
    try:
        seen = []
        for method, path, data in [
            ("GET", "/healthz", None),
            ("POST", "/v1/verify", body),
            ("GET", "/nope", None),
            ("GET", "/v1/cert.pem", None),
            ("POST", "/v1/rotate", body),
        ]:
            conn.request(method, path, body=data, headers={"X-Forwarded-For": "198.51.100.9"})
            resp = conn.getresponse()
            resp.read()
            seen.append(resp.status)
        assert seen == [200, 200, 404, 200, 200]
    finally:
        conn.close()
