"""The controller's HTTP transport to the apiserver: a urllib3 pool on `sealkit.kubeconfig`.

Why not the official client: ``import kubernetes`` loads about 1,250 modules (every API group
and model class), which cost ~1.5 s of CPU before the first request (several seconds on a
loaded node) and ~50 MB of resident memory, for a controller that only ever sends dict bodies
to a dozen paths. This module does what `kubernetes.client.ApiClient.call_api` did for us and
nothing more: the kubeconfig (or the in-cluster service account) read by the CLI's own loader
(`sealkit.kubeconfig`, kubectl's rules, ``exec`` plugins included), TLS and credentials as
`sealkit.kubehttp` sets them up, a thread-safe keep-alive pool, per-request timeouts, no
retries and no redirects (the callers own their retry policy), and streamed responses for
watches.

The in-cluster token is re-read every minute: kubelet rotates bound service-account tokens.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import urllib3

__all__ = ["HttpError", "KubeHttp", "iter_lines"]

_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_TOKEN_REFRESH = 60.0


class HttpError(Exception):
    """The apiserver answered with a status >= 400 (body kept for its Status message)."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iter_lines(resp: Any) -> Iterator[bytes]:
    """The lines of a streamed (chunked) response as they arrive: one watch event each."""
    pending = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        pending += chunk
        while True:
            line, sep, rest = pending.partition(b"\n")
            if not sep:
                break
            pending = rest
            yield line
    if pending:
        yield pending


class KubeHttp:
    """A pool of keep-alive connections to one apiserver, safe to share between threads."""

    def __init__(self, rc: Any, *, pool_size: int = 16, token_file: str = "") -> None:
        from sealkit.kubehttp import Session, ssl_context

        self.server = str(rc.server).rstrip("/")
        headers, cert, key = Session(rc).credentials()
        self._headers = headers
        self._token_file = token_file
        self._token_read = time.monotonic()
        self._lock = threading.Lock()
        kw: dict[str, Any] = {"maxsize": pool_size, "block": False, "retries": False}
        if self.server.startswith("https://"):
            kw["ssl_context"] = ssl_context(rc, cert, key)
            if rc.insecure:
                kw.update(cert_reqs="CERT_NONE", assert_hostname=False)
            elif rc.tls_server_name:
                kw["server_hostname"] = rc.tls_server_name
        if rc.proxy_url:
            self.pool: urllib3.PoolManager = urllib3.ProxyManager(rc.proxy_url, num_pools=2, **kw)
        else:
            self.pool = urllib3.PoolManager(num_pools=2, **kw)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str, context: str = "", **kw: Any) -> KubeHttp:
        """``--kubeconfig``/``--context`` (kubectl's loading rules, ``$KUBECONFIG`` too)."""
        from sealkit.cluster_options import ClusterOptions
        from sealkit.kubeconfig import rest_config

        return cls(rest_config(ClusterOptions(kubeconfig=kubeconfig, context=context)), **kw)

    @classmethod
    def in_cluster(cls, **kw: Any) -> KubeHttp:
        """The pod's service account (``KUBERNETES_SERVICE_HOST``, token and CA files)."""
        from sealkit import ClusterError
        from sealkit.kubeconfig import RestConfig

        host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        token_file = os.path.join(_SA_DIR, "token")
        if not host:
            raise ClusterError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
        try:
            with open(token_file) as f:
                token = f.read().strip()
            with open(os.path.join(_SA_DIR, "ca.crt"), "rb") as fb:
                ca = fb.read()
        except OSError as exc:
            raise ClusterError(f"service account: {exc.strerror}: {exc.filename}") from None
        host = f"[{host}]" if ":" in host else host
        rc = RestConfig(server=f"https://{host}:{port}", ca_data=ca, token=token)
        return cls(rc, token_file=token_file, **kw)

    def _auth(self) -> dict[str, str]:
        if self._token_file and time.monotonic() - self._token_read > _TOKEN_REFRESH:
            with self._lock:
                self._token_read = time.monotonic()
                try:
                    with open(self._token_file) as f:
                        token = f.read().strip()
                except OSError:
                    token = ""  # keep the old one; the apiserver says 401 if it expired
                if token:
                    self._headers = {**self._headers, "Authorization": f"Bearer {token}"}
        return self._headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        headers: dict[str, str] | None = None,
        body: Any = None,
        timeout: Any = 30.0,
        stream: bool = False,
    ) -> Any:
        """One call; the urllib3 response (body read unless `stream`). `HttpError` >= 400."""
        url = self.server + path
        if query:
            url += "?" + urlencode(
                [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in query]
            )
        data = None if body is None else json.dumps(body, default=_json_default).encode()
        if isinstance(timeout, tuple):
            t = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        else:
            t = urllib3.Timeout(connect=timeout, read=timeout)
        resp = self.pool.request(
            method,
            url,
            body=data,
            headers={**self._auth(), **(headers or {})},
            timeout=t,
            preload_content=not stream,
            redirect=False,
        )
        if resp.status >= 400:
            payload = resp.data if not stream else resp.read(1 << 20)
            resp.release_conn()
            raise HttpError(resp.status, str(resp.reason or ""), payload or b"")
        return resp

    def close(self) -> None:
        self.pool.clear()
