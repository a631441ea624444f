"""One HTTPS request to the apiserver with a `RestConfig`, on the standard library only.

What client-go's transport does for kubeseal's few calls, and nothing more: TLS with the
cluster CA (or none with ``insecure-skip-tls-verify``), ``tls-server-name``, client
certificates, bearer tokens, basic auth, impersonation headers, ``exec`` credential plugins
(``client.authentication.k8s.io`` v1/v1beta1, run once per process), and proxies: the
cluster's ``proxy-url`` or, as Go's ``ProxyFromEnvironment``, ``HTTPS_PROXY``/``NO_PROXY``
(http:// proxies via CONNECT; SOCKS and https:// proxies are refused with a clear error).
One keep-alive connection (`Session`) serves all the requests of a run, as client-go's does.

Errors come back as `HttpFailure` (status 0 when there was no HTTP answer) with a one-line
message: the apiserver's Status message when it sent one.
"""

from __future__ import annotations

import base64
import json
import os
import sys

from sealkit._exceptions import ClusterError
from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl
    from typing import Any

    from sealkit.kubeconfig import RestConfig

__all__ = ["HttpFailure", "Session", "request", "ssl_context"]

_MAX_BODY = 16 << 20  # a certificate or one SealedSecret; far more is not an answer
_MAX_LINE = 64 << 10


class HttpFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _exec_credential(rc: RestConfig) -> dict[str, Any]:
    """Run the kubeconfig's exec plugin; its ExecCredential ``status``."""
    import subprocess

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
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": info}
    )
    try:
        proc = subprocess.run(  # noqa: S603 - the user's own kubeconfig names the command
            [command, *[str(a) for a in spec.get("args") or []]],
            env=env,
            stdin=None if interactive else subprocess.DEVNULL,
            capture_output=False,
            stdout=subprocess.PIPE,
            timeout=300,
            check=False,
        )
    except FileNotFoundError:
        hint = str(spec.get("installHint") or "").strip()
        raise ClusterError(
            f"getting credentials: exec: executable {command} not found"
            + (f" ({' '.join(hint.split())})" if hint else "")
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"getting credentials: exec: {type(exc).__name__}") from None
    if proc.returncode != 0:
        raise ClusterError(
            f"getting credentials: exec: executable {command} failed with "
            f"exit code {proc.returncode}"
        )
    try:
        cred = json.loads(proc.stdout)
        status = cred["status"]
        if not isinstance(status, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ClusterError(
            "getting credentials: exec plugin returned no ExecCredential status"
        ) from None
    return status


def _write_private(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def _ssl_context(rc: RestConfig, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    """client-go's TLS: the kubeconfig's CA only when it has one (the system roots otherwise;
    loading them costs more than the request), or no verification when told so."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if rc.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif rc.ca_data:
        try:
            ctx.load_verify_locations(cadata=rc.ca_data.decode("ascii", "replace"))
        except ssl.SSLError:
            raise ClusterError("unable to load root certificates: no valid PEM data") from None
    else:
        ctx.load_default_certs()
    if cert and key:
        try:
            _load_client_pair(ctx, cert, key)
        except ssl.SSLError:
            raise ClusterError("tls: failed to load the client certificate/key pair") from None
    return ctx


def ssl_context(rc: RestConfig, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    """The TLS context of `Session`, for a caller with its own connection pool (the
    sealkit-controller's `controller.kube_http`)."""
    return _ssl_context(rc, cert, key)


def _load_client_pair(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads client keys from files only: anonymous memory files where Linux has them
    (nothing touches a disk), else a private temp dir removed at once."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fds = [os.memfd_create(name, os.MFD_CLOEXEC) for name in ("crt", "key")]
        try:
            for fd, data in zip(fds, (cert, key), strict=True):
                os.write(fd, data)
            ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        finally:
            for fd in fds:
                os.close(fd)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sealkit-tls-") as tmp:
        ctx.load_cert_chain(_write_private(tmp, "crt", cert), _write_private(tmp, "key", key))


def _env_proxy(scheme: str, host: str) -> str:
    """Go's ``http.ProxyFromEnvironment``: ``HTTPS_PROXY``/``HTTP_PROXY`` unless ``NO_PROXY``
    names the host (exactly, or as a domain suffix; ``*`` for all). Loopback never."""
    if host in ("localhost", "::1") or host.startswith("127."):
        return ""
    names = ("HTTPS_PROXY", "https_proxy") if scheme == "https" else ("HTTP_PROXY", "http_proxy")
    proxy = next((os.environ[n] for n in names if os.environ.get(n)), "")
    if not proxy:
        return ""
    no_proxy = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return ""
        entry = entry.split(":", 1)[0] if entry.count(":") == 1 else entry
        bare = entry.lstrip(".")
        if host.lower() == bare or host.lower().endswith("." + bare):
            return ""
    return proxy


def split_server(url: str) -> tuple[str, str, int | None, str, str]:
    """``urllib.parse.urlsplit(url)``'s scheme, hostname, port, path and netloc.

    A server URL is nearly always ``https://host:port[/path]``: that form is split here, as
    urlsplit would, without importing urllib.parse and ipaddress (about 3 ms of a cluster
    call). Anything else (userinfo, IPv6, query, escapes, odd characters) goes to urlsplit.
    """
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    host, colon, port = netloc.partition(":")
    if (
        sep
        and scheme.isalpha()
        and scheme.isascii()
        and host
        and host.isascii()
        and host.replace(".", "").replace("-", "").isalnum()
        and (not colon or (port.isdigit() and port.isascii() and int(port) <= 65535))
        and all(c not in path for c in "?#%;\\ \t\r\n")
        and (path.isascii() and path.isprintable())
    ):
        return scheme.lower(), host.lower(), int(port) if port else None, slash + path, netloc
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port, parts.path, parts.netloc


def _idna_free(host: str) -> str | bytes:
    """An ASCII host as bytes: socket and ssl then skip the ``idna`` codec (and its
    ``stringprep``/``unicodedata`` imports), whose result for a valid ASCII name is the name
    itself. Anything else stays a str, so the codec judges it as before."""
    labels = host.split(".")
    if (
        host.isascii()
        and all(0 < len(label) < 64 for label in labels[:-1])
        and len(labels[-1]) < 64
    ):  # the codec's own ASCII fast path (encodings.idna.Codec.encode), minus its import
        return host.encode("ascii")
    return host


class Session:
    """One keep-alive HTTP/1.1 connection to the apiserver for the few requests of a run.

    A small client on a socket, not http.client: that module pulls in the email package, which
    alone costs more than the whole request (cold start is benchmarked against kubeseal).
    """

    def __init__(self, rc: RestConfig, timeout: float | None = 30.0) -> None:
        self.rc = rc
        self.timeout = timeout
        scheme, host, port, path, netloc = split_server(rc.server)
        if scheme not in ("https", "http") or not host:
            raise ClusterError(f'invalid server URL "{rc.server}"')
        self.scheme = scheme
        self.host = host
        self.port = port or (443 if scheme == "https" else 80)
        self.prefix = path.rstrip("/")
        self.host_header = netloc.rsplit("@", 1)[-1]
        self._file: Any = None
        self._sock: Any = None
        self._headers: dict[str, str] | None = None
        self._cert: tuple[bytes | None, bytes | None] = (rc.client_cert_data, rc.client_key_data)

    # -- credentials -------------------------------------------------------------------------
    def _auth_headers(self) -> dict[str, str]:
        if self._headers is not None:
            return self._headers
        rc = self.rc
        token = rc.token
        cert, key = self._cert
        if rc.exec_config is not None and not token and not (cert and key):
            status = _exec_credential(rc)
            token = str(status.get("token") or "")
            if status.get("clientCertificateData") and status.get("clientKeyData"):
                self._cert = (
                    str(status["clientCertificateData"]).encode(),
                    str(status["clientKeyData"]).encode(),
                )
        headers = {"Host": self.host_header, "User-Agent": "sealkit", "Accept-Encoding": "identity"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif rc.username or rc.password:
            pair = f"{rc.username}:{rc.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        if rc.impersonate:
            headers["Impersonate-User"] = rc.impersonate
        if rc.impersonate_uid:
            headers["Impersonate-Uid"] = rc.impersonate_uid
        self._headers = headers
        return headers

    def credentials(self) -> tuple[dict[str, str], bytes | None, bytes | None]:
        """Request headers that authenticate (bearer, basic, impersonation; an ``exec`` plugin
        runs once) and the client certificate and key, for a caller with its own pool."""
        headers = {
            k: v
            for k, v in self._auth_headers().items()
            if k not in ("Host", "User-Agent", "Accept-Encoding")
        }
        return headers, self._cert[0], self._cert[1]

    # -- connection ----------------------------------------------------------------------------
    def _connect(self) -> None:
        import socket

        proxy = self.rc.proxy_url or _env_proxy(self.scheme, self.host)
        if proxy:
            import urllib.parse

            purl = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
            if purl.scheme != "http":
                raise ClusterError(
                    f"proxy scheme {purl.scheme!r} is not supported by sealkit "
                    "(http:// CONNECT proxies only)"
                )
            sock = socket.create_connection(
                (purl.hostname or "", purl.port or 80), timeout=self.timeout
            )
            auth = ""
            if purl.username:
                creds = (
                    f"{urllib.parse.unquote(purl.username)}:"
                    f"{urllib.parse.unquote(purl.password or '')}"
                )
                auth = f"Proxy-Authorization: Basic {base64.b64encode(creds.encode()).decode()}\r\n"
            target = f"{self.host}:{self.port}"
            sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n".encode())
            reply = sock.makefile("rb")
            status_line = reply.readline(_MAX_LINE)
            while reply.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass
            parts = status_line.split(None, 2)
            if len(parts) < 2 or parts[1] != b"200":
                sock.close()
                raise OSError(f"proxyconnect tcp: {status_line.decode('latin-1').strip()}")
        else:
            # getaddrinfo takes bytes hosts too (typeshed says str only)
            address = (_idna_free(self.host), self.port)
            sock = socket.create_connection(address, timeout=self.timeout)  # type: ignore[arg-type]
        if self.scheme == "https":
            ctx = _ssl_context(self.rc, *self._cert)
            name = _idna_free(self.rc.tls_server_name or self.host)
            sock = ctx.wrap_socket(sock, server_hostname=name)
        self._sock = sock
        self._file = sock.makefile("rb")

    def close(self) -> None:
        for item in (self._file, self._sock):
            try:
                if item is not None:
                    item.close()
            except Exception:  # noqa: S110 - closing a broken connection; nothing to report
                pass
        self._file = self._sock = None

    def request(
        self, method: str, path: str, *, body: bytes | None = None, accept: str = "application/json"
    ) -> bytes:
        """The body of a 2xx answer to ``method path``; `HttpFailure` otherwise."""
        headers = dict(self._auth_headers())
        headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(body))
        lines = [f"{method} {self.prefix}{path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Impersonate-Group: {g}" for g in self.rc.impersonate_groups]
        for extra_key, values in self.rc.impersonate_extra.items():
            import urllib.parse

            lines += [f"Impersonate-Extra-{urllib.parse.quote(extra_key)}: {v}" for v in values]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            if self._sock is None:
                self._connect()
            self._sock.sendall(raw)
            status, reason, data, keep = self._read_response()
        except (OSError, ValueError) as exc:  # refused, TLS, timeout, malformed answer
            self.close()
            raise HttpFailure(0, _describe(method, self.rc, path, exc)) from None
        if not keep:
            self.close()
        if 200 <= status < 300:
            return data
        raise HttpFailure(status, _status_message(status, reason, data))

    def _read_response(self) -> tuple[int, str, bytes, bool]:
        f = self._file
        line = f.readline(_MAX_LINE)
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError("malformed HTTP response")
        status, reason = int(parts[1]), (parts[2].strip() if len(parts) > 2 else "")
        headers: dict[str, str] = {}
        for _ in range(200):
            line = f.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError("too many response headers")
        keep = headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(f.readline(_MAX_LINE).split(b";")[0].strip() or b"0", 16)
                if size < 0:
                    raise ValueError("bad chunk size")
                if size == 0:
                    while f.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > _MAX_BODY:
                    raise ValueError("response too large")
                chunks.append(f.read(size))
                f.readline(_MAX_LINE)
            data = b"".join(chunks)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length < 0 or length > _MAX_BODY:
                raise ValueError("response too large")
            data = f.read(length)
            if len(data) != length:
                raise ValueError("short response body")
        else:
            data = f.read(_MAX_BODY + 1)
            keep = False
            if len(data) > _MAX_BODY:
                raise ValueError("response too large")
        return status, reason, data, keep


def request(
    rc: RestConfig,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    accept: str = "application/json",
    timeout: float | None = 30.0,
) -> bytes:
    """One request on a fresh `Session` (the gateway keeps one session for all its calls)."""
    session = Session(rc, timeout)
    try:
        return session.request(method, path, body=body, accept=accept)
    finally:
        session.close()


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
        return (
            f"the server responded with the status code {status} but did not return more "
            f"information ({text})"
        )
    return f"{status} {reason}".strip()
