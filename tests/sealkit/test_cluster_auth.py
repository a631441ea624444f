"""Every kubeconfig credential type sealkit's own request code supports, against the REAL
apiserver, each compared with the real kubeseal on the same kubeconfig: a ServiceAccount token
(inline, ``tokenFile``, ``--token``), an ``exec`` plugin (a real process printing an
ExecCredential), client certificates (the stack's admin kubeconfig, in test_cluster.py),
``--insecure-skip-tls-verify``, impersonation, and an HTTP CONNECT proxy (``proxy-url`` and
``HTTPS_PROXY``)."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sealkit.conftest import run_sealkit
from tests.sealkit.test_cluster import (  # noqa: F401 - fixtures
    controller_pod,
    proxied_controller,
)

pytestmark = pytest.mark.stack


@pytest.fixture
def namespace(proxied_controller: dict[str, Any]) -> str:  # noqa: F811
    """The namespace of the module's controller pod (test_cluster's `controller_pod`): the
    Service, its proxy and the ServiceAccount below all live there."""
    return str(proxied_controller["namespace"])


@pytest.fixture
def sa_token(kube_api: Any, namespace: str) -> str:
    """A ServiceAccount that may only GET the Service and use its proxy (kubeseal's needs).
    Its name is new per test: the controller's namespace lives for the whole module."""
    import secrets

    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    name = f"sealer-{secrets.token_hex(3)}"
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": name},
            "rules": [
                {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get", "create"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    resp = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    return str(resp.status.token)


def _kubeconfig(
    stack: Any, tmp_path: Path, user: dict[str, Any], name: str = "kc", **cluster_extra: Any
) -> str:
    base = yaml.safe_load(Path(stack.kubeconfig).read_text())
    cluster = dict(base["clusters"][0]["cluster"])
    cluster.update(cluster_extra)
    if cluster_extra.get("insecure-skip-tls-verify"):
        cluster.pop("certificate-authority-data", None)
        cluster.pop("certificate-authority", None)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _both(
    kubeseal_path: str,
    kubeconfig: str,
    namespace: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[Any, Any]:
    import os

    args = ["--fetch-cert", "--kubeconfig", kubeconfig, "--controller-namespace", namespace, *extra]
    ours = run_sealkit(*args, env=env)
    theirs = subprocess.run(
        [kubeseal_path, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    return ours, theirs


def _same_cert(ours: Any, theirs: Any) -> None:
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout and "BEGIN CERTIFICATE" in ours.stdout


def test_token_inline_file_and_flag(
    stack, namespace, sa_token, kubeseal_path, tmp_path, proxied_controller
) -> None:  # noqa: F811
    _same_cert(*_both(kubeseal_path, _kubeconfig(stack, tmp_path, {"token": sa_token}), namespace))
    token_file = tmp_path / "token"
    token_file.write_text(sa_token + "\n")
    _same_cert(
        *_both(kubeseal_path, _kubeconfig(stack, tmp_path, {"tokenFile": "token"}), namespace)
    )
    empty = _kubeconfig(stack, tmp_path, {}, name="empty")
    _same_cert(*_both(kubeseal_path, empty, namespace, "--token", sa_token))
    ours, theirs = _both(kubeseal_path, empty, namespace, "--token", "not-a-token")
    assert ours.returncode == theirs.returncode == 1
    assert "Unauthorized" in theirs.stderr and "Unauthorized" in ours.stderr


def test_exec_plugin(
    stack, namespace, sa_token, kubeseal_path, tmp_path, proxied_controller
) -> None:  # noqa: F811
    plugin = tmp_path / "get-token"
    plugin.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "assert info['kind'] == 'ExecCredential', info\n"
        "json.dump({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential',\n"
        f"           'status': {{'token': os.environ['TOKEN_PREFIX'] + {sa_token[8:]!r}}}}},"
        " sys.stdout)\n"
    )
    plugin.chmod(0o755)
    for api_version in ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"):
        user = {
            "exec": {
                "apiVersion": api_version,
                "command": str(plugin),
                "env": [{"name": "TOKEN_PREFIX", "value": sa_token[:8]}],
                "interactiveMode": "Never",
            }
        }
        _same_cert(*_both(kubeseal_path, _kubeconfig(stack, tmp_path, user), namespace))
    missing = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(tmp_path / "nope"),
            "interactiveMode": "Never",
        }
    }
    ours, theirs = _both(kubeseal_path, _kubeconfig(stack, tmp_path, missing, name="m"), namespace)
    assert ours.returncode == theirs.returncode == 1
    assert "nope" in ours.stderr and len(ours.stderr.splitlines()) == 1


def test_insecure_skip_tls_verify_and_impersonation(
    stack, namespace, sa_token, kubeseal_path, tmp_path, proxied_controller
) -> None:  # noqa: F811
    insecure = _kubeconfig(
        stack, tmp_path, {"token": sa_token}, **{"insecure-skip-tls-verify": True}
    )
    _same_cert(*_both(kubeseal_path, insecure, namespace))
    # No CA and no skip: both refuse the apiserver's certificate.
    base = yaml.safe_load(Path(insecure).read_text())
    base["clusters"][0]["cluster"].pop("insecure-skip-tls-verify")
    unverified = tmp_path / "unverified"
    unverified.write_text(yaml.safe_dump(base))
    ours, theirs = _both(kubeseal_path, str(unverified), namespace)
    assert ours.returncode == theirs.returncode == 1
    assert "certificate" in ours.stderr
    # The SA may not impersonate: the apiserver says so to both.
    ours, theirs = _both(kubeseal_path, insecure, namespace, "--as", "someone")
    assert ours.returncode == theirs.returncode == 1
    assert "impersonate" in ours.stderr and "impersonate" in theirs.stderr


@pytest.fixture
def connect_proxy() -> Iterator[dict[str, Any]]:
    """A minimal HTTP CONNECT proxy on loopback that counts the tunnels it opened."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, Any] = {"tunnels": 0, "url": f"http://127.0.0.1:{server.getsockname()[1]}"}
    stop = threading.Event()

    def pipe(a: socket.socket, b: socket.socket) -> None:
        with a, b:
            while not stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.5)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)

    def handle(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        method, target = head.split(b" ")[:2]
        host, port = target.decode().rsplit(":", 1)
        if method != b"CONNECT" or host not in ("127.0.0.1", "localhost"):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            conn.close()
            return
        upstream = socket.create_connection((host, int(port)))
        seen["tunnels"] += 1
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pipe(conn, upstream)

    def serve() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_proxy_url_tunnels_through_connect(
    stack, namespace, sa_token, kubeseal_path, tmp_path, proxied_controller, connect_proxy
) -> None:  # noqa: F811
    proxied = _kubeconfig(
        stack, tmp_path, {"token": sa_token}, **{"proxy-url": connect_proxy["url"]}
    )
    ours = run_sealkit("--fetch-cert", "--kubeconfig", proxied, "--controller-namespace", namespace)
    assert ours.returncode == 0, ours.stderr
    assert connect_proxy["tunnels"] >= 1
    socks = _kubeconfig(
        stack, tmp_path, {"token": sa_token}, name="socks", **{"proxy-url": "socks5://127.0.0.1:1"}
    )
    refused = run_sealkit(
        "--fetch-cert", "--kubeconfig", socks, "--controller-namespace", namespace
    )
    assert refused.returncode == 1 and "not supported" in refused.stderr
