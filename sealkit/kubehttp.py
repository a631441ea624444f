"""One HTTPS request to the apiserver with a `RestConfig`, on the standard library only.

What client-go's transport does for kubeseal's few calls, and nothing more: TLS with the
cluster CA (or none with ``insecure-skip-tls-verify``), ``tls-server-name``, client
certificates, bearer tokens, basic auth, impersonation headers, ``exec`` credential plugins
(``client.authentication.k8s.io`` v1/v1beta1, run once per process), and proxies: the
cluster's ``proxy-url`` or, as Go's ``ProxyFromEnvironment``, ``HTTPS_PROXY``/``NO_PROXY``
(http(s) proxies via CONNECT; SOCKS is refused with a clear error).

Errors come back as `HttpFailure` (status 0 when there was no HTTP answer) with a one-line
message: the apiserver's Status message when it sent one.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import ClusterError

if TYPE_CHECKING:
    import ssl

    from sealkit.kubeconfig import RestConfig

__all__ = ["HttpFailure", "request"]

_MAX_BODY = 16 << 20  # a certificate or one SealedSecret; far more is not an answer


class HttpFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _exec_credential(rc: RestConfig) -> dict[str, Any]:
    """Run the kubeconfig's exec plugin; its ExecCredential ``status``."""
    spec = rc.exec_config or {}
    command = str(spec.get("command") or "")
    api_version = str(spec.get("apiVersion") or "client.authentication.k8s.io/v1")
    mode = str(spec.get("interactiveMode") or "IfAvailable")
    interactive = mode != "Never" and sys.stdin.isatty()
    info: dict[str, Any] = {"interactive": interactive}
    if spec.get("provideClusterInfo"):
        info["cluster"] = dict(rc.cluster_info)  # the ExecCredential keys are kubeconfig's
    env = dict(os.environ)
    for item in spec.get("env") or []:
        if isinstance(item, dict) and item.get("name"):
            env[str(item["name"])] = str(item.get("value") or "")
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": info})
    try:
        proc = subprocess.run(  # noqa: S603 - the user's own kubeconfig names the command
            [command, *[str(a) for a in spec.get("args") or []]], env=env,
            stdin=None if interactive else subprocess.DEVNULL, capture_output=False,
            stdout=subprocess.PIPE, timeout=300, check=False)
    except FileNotFoundError:
        hint = str(spec.get("installHint") or "").strip()
        raise ClusterError(f"getting credentials: exec: executable {command} not found"
                           + (f" ({' '.join(hint.split())})" if hint else "")) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"getting credentials: exec: {type(exc).__name__}") from None
    if proc.returncode != 0:
        raise ClusterError(f"getting credentials: exec: executable {command} failed with "
                           f"exit code {proc.returncode}")
    try:
        cred = json.loads(proc.stdout)
        status = cred["status"]
        if not isinstance(status, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ClusterError("getting credentials: exec plugin returned no ExecCredential "
                           "status") from None
    return status


def _write_private(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def _ssl_context(rc: RestConfig, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    import ssl

    ctx = ssl.create_default_context()
    if rc.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif rc.ca_data:
        try:
            ctx.load_verify_locations(cadata=rc.ca_data.decode("ascii", "replace"))
        except ssl.SSLError:
            raise ClusterError("unable to load root certificates: no valid PEM data") from None
    if cert and key:
        # ssl loads client keys from files only: a private temp dir, removed at once.
        with tempfile.TemporaryDirectory(prefix="sealkit-tls-") as tmp:
            try:
                ctx.load_cert_chain(_write_private(tmp, "crt", cert), _write_private(tmp, "key",
                                                                                  key))
            except ssl.SSLError:
                raise ClusterError("tls: failed to load the client certificate/key "
                                   "pair") from None
    return ctx


def _proxy_for(rc: RestConfig, scheme: str, host: str) -> str:
    if rc.proxy_url:
        return rc.proxy_url
    if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        return ""  # Go's ProxyFromEnvironment never proxies loopback
    import urllib.request

    if urllib.request.proxy_bypass_environment(host):
        return ""
    proxies = urllib.request.getproxies_environment()
    return proxies.get(scheme, "")


def _connection(rc: RestConfig, timeout: float | None, cert: bytes | None,
                key: bytes | None) -> tuple[http.client.HTTPConnection, str]:
    url = urllib.parse.urlsplit(rc.server)
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ClusterError(f'invalid server URL "{rc.server}"')
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    proxy = _proxy_for(rc, url.scheme, host)
    target_host, target_port = host, port
    if proxy:
        purl = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if purl.scheme not in ("http", "https"):
            raise ClusterError(f"proxy scheme {purl.scheme!r} is not supported by sealkit "
                               "(http and https proxies only)")
        host, port = purl.hostname or "", purl.port or (443 if purl.scheme == "https" else 80)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        ctx = _ssl_context(rc, cert, key)
        server_hostname = rc.tls_server_name or target_host
        conn = _SNIConnection(host, port, timeout=timeout, context=ctx,
                              server_hostname=server_hostname)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    if proxy:
        headers = {}
        purl = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if purl.username:
            user = urllib.parse.unquote(purl.username)
            creds = f"{user}:{urllib.parse.unquote(purl.password or '')}"
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
        conn.set_tunnel(target_host, target_port, headers=headers)
    path_prefix = url.path.rstrip("/")
    return conn, path_prefix


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS whose TLS server name may differ from the host (``tls-server-name``, proxies)."""

    def __init__(self, *args: Any, server_hostname: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_hostname = server_hostname

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and the CONNECT tunnel if any
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self._server_hostname)


def request(rc: RestConfig, method: str, path: str, *, body: bytes | None = None,
            accept: str = "application/json", timeout: float | None = 30.0) -> bytes:
    """The body of a 2xx answer to ``method path``; `HttpFailure` otherwise."""
    cert, key, token = rc.client_cert_data, rc.client_key_data, rc.token
    if rc.exec_config is not None and not token and not (cert and key):
        status = _exec_credential(rc)
        token = str(status.get("token") or "")
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            cert = str(status["clientCertificateData"]).encode()
            key = str(status["clientKeyData"]).encode()
    headers = {"Accept": accept, "User-Agent": "sealkit"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif rc.username or rc.password:
        pair = f"{rc.username}:{rc.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    conn, prefix = _connection(rc, timeout, cert, key)
    try:
        conn.putrequest(method, prefix + path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if rc.impersonate:
            conn.putheader("Impersonate-User", rc.impersonate)
        if rc.impersonate_uid:
            conn.putheader("Impersonate-Uid", rc.impersonate_uid)
        for group in rc.impersonate_groups:
            conn.putheader("Impersonate-Group", group)
        for extra_key, values in rc.impersonate_extra.items():
            for value in values:
                conn.putheader(f"Impersonate-Extra-{urllib.parse.quote(extra_key)}", value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read(_MAX_BODY + 1)
    except (OSError, ValueError) as exc:  # refused, TLS, timeout, bad status line
        raise HttpFailure(0, _describe(method, rc, path, exc)) from None
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    if len(data) > _MAX_BODY:
        raise HttpFailure(0, "response too large")
    if 200 <= response.status < 300:
        return data
    raise HttpFailure(response.status, _status_message(response.status, response.reason, data))


def _describe(method: str, rc: RestConfig, path: str, exc: BaseException) -> str:
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"tls: failed to verify certificate: {exc.verify_message}"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connect: connection refused"
    elif isinstance(exc, TimeoutError):
        reason = "i/o timeout (Client.Timeout exceeded while awaiting headers)"
    else:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    verb = method[0] + method[1:].lower()
    return f'{verb} "{rc.server}{path}": {reason}'


def _status_message(status: int, reason: str, body: bytes) -> str:
    """The apiserver's Status message (e.g. 'no endpoints available for service ...')."""
    try:
        doc = json.loads(body or b"")
        if isinstance(doc, dict) and doc.get("message"):
            return " ".join(str(doc["message"]).split())
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip() if len(body) < 512 else ""
    if text and "\n" not in text:
        return f"the server responded with the status code {status} but did not return more "\
            f"information ({text})"
    return f"{status} {reason}".strip()
