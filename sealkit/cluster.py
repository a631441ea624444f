"""How the CLI reaches the sealed-secrets controller: the only module doing network I/O.

Two transports, one small surface (`ControllerGateway`: ``cert_pem``, ``verify``, ``rotate``):

* `ProxyGateway` goes through the apiserver's service proxy exactly as kubeseal does: GET the
  controller Service, take ``spec.ports[0].name``, then talk to
  ``/api/v1/namespaces/<ns>/services/http:<name>:<port>/proxy/v1/...``. It never imports the
  kubernetes client (whose import alone cost several kubeseal runs): `sealkit.kubeconfig`
  resolves the kubeconfig and `sealkit.kubehttp` makes each request with the stdlib.
* `DirectGateway` talks to a controller URL (sealkit's ``--controller-url``), for clusters
  whose apiserver cannot proxy to pods (private GKE/EKS, upstream #317 #694).

`fetch_url` serves ``--cert http(s)://`` and ``file://``. `kubeconfig_namespace` is the
namespace kubectl would use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sealkit._exceptions import ClusterError, InputError, UnsealError
from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Protocol

    from sealkit.cluster_options import ClusterOptions
    from sealkit.kubehttp import Session

else:
    Protocol = object  # a plain base at run time: no typing import on a cluster call

__all__ = [
    "ControllerGateway",
    "DirectGateway",
    "ProxyGateway",
    "fetch_url",
    "kubeconfig_namespace",
]

DEFAULT_CONTROLLER_NAME = "sealed-secrets-controller"
DEFAULT_CONTROLLER_NAMESPACE = "kube-system"
_PEM_ACCEPT = "application/x-pem-file, */*"


class ControllerGateway(Protocol):
    def cert_pem(self) -> bytes: ...

    def verify(self, sealed: Mapping[str, Any]) -> None:
        """Raises `UnsealError` if the controller cannot decrypt ``sealed``."""

    def rotate(self, sealed: Mapping[str, Any]) -> dict[str, Any]: ...


def fetch_url(url: str, timeout: float = 30.0) -> bytes:
    """GET ``url`` (``http(s)://``, honouring proxy env vars, or ``file://``)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    if url.startswith("file://"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InputError(f"cannot read certificate {path}: {exc.strerror}") from None
    request = urllib.request.Request(url, headers={"Accept": _PEM_ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as exc:
        raise ClusterError(f'cannot fetch "{url}": {exc.code} {exc.reason}') from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClusterError(f'cannot fetch "{url}": {reason}') from None


class DirectGateway:
    """A controller reachable over HTTP at ``base_url`` (no apiserver in between)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _post(self, path: str, body: Mapping[str, Any]) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClusterError(f"cannot reach controller at {self.base_url}: {reason}") from None

    def cert_pem(self) -> bytes:
        try:
            return fetch_url(self.base_url + "/v1/cert.pem", self.timeout)
        except ClusterError as exc:
            raise ClusterError(f"cannot fetch certificate: {exc}") from None

    def verify(self, sealed: Mapping[str, Any]) -> None:
        status, _ = self._post("/v1/verify", sealed)
        _check_verify(status, sealed)

    def rotate(self, sealed: Mapping[str, Any]) -> dict[str, Any]:
        status, body = self._post("/v1/rotate", sealed)
        return _rotated(status, body)


def _check_verify(status: int, sealed: Mapping[str, Any]) -> None:
    if status == 200:
        return
    name = (sealed.get("metadata") or {}).get("name", "")
    if status == 409:
        raise UnsealError(f"unable to decrypt sealed secret: {name}")
    raise ClusterError(f"cannot validate sealed secret: controller answered {status}")


def _rotated(status: int, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise ClusterError(f"cannot re-encrypt secret: controller answered {status}")
    try:
        result = json.loads(body)
    except ValueError:
        raise ClusterError("cannot re-encrypt secret: controller sent invalid JSON") from None
    if not isinstance(result, dict):
        raise ClusterError("cannot re-encrypt secret: controller sent invalid JSON")
    return result


class ProxyGateway:
    """The controller behind the apiserver service proxy, reached as kubeseal does."""

    def __init__(self, cluster: ClusterOptions, *, timeout: float | None = 30.0) -> None:
        self.cluster = cluster
        self.name = cluster.controller_name or DEFAULT_CONTROLLER_NAME
        self.namespace = cluster.controller_namespace or DEFAULT_CONTROLLER_NAMESPACE
        self.timeout = timeout
        self._session: Session | None = None
        self._prefix: str | None = None

    def _call(
        self, method: str, path: str, *, body: Any = None, accept: str = "application/json"
    ) -> bytes:
        from sealkit.kubeconfig import rest_config
        from sealkit.kubehttp import Session

        if self._session is None:  # one keep-alive connection for all calls, as client-go
            self._session = Session(rest_config(self.cluster), self.timeout)
        data = None if body is None else json.dumps(body).encode()
        return self._session.request(method, path, body=data, accept=accept)

    def _proxy_prefix(self) -> str:
        from sealkit.kubehttp import HttpFailure

        if self._prefix is None:
            service_path = f"/api/v1/namespaces/{_q(self.namespace)}/services/{_q(self.name)}"
            try:
                service = json.loads(self._call("GET", service_path))
            except (HttpFailure, ValueError) as exc:
                message = exc.message if isinstance(exc, HttpFailure) else "invalid JSON"
                raise ClusterError(
                    f"cannot get sealed secret service: {message}. Please, use the flag "
                    "--controller-name and --controller-namespace to set up the name and "
                    "namespace of the sealed secrets controller"
                ) from None
            ports = (
                ((service.get("spec") or {}).get("ports") or [{}])
                if isinstance(service, dict)
                else [{}]
            )
            port_name = (ports[0] or {}).get("name") or ""
            self._prefix = (
                f"/api/v1/namespaces/{_q(self.namespace)}/services/"
                f"{_q(f'http:{self.name}:{port_name}')}/proxy"
            )
        return self._prefix

    def cert_pem(self) -> bytes:
        from sealkit.kubehttp import HttpFailure

        prefix = self._proxy_prefix()
        try:
            return self._call("GET", prefix + "/v1/cert.pem", accept=_PEM_ACCEPT)
        except HttpFailure as exc:
            raise ClusterError(f"cannot fetch certificate: {exc.message}") from None

    def verify(self, sealed: Mapping[str, Any]) -> None:
        from sealkit.kubehttp import HttpFailure

        prefix = self._proxy_prefix()
        try:
            self._call("POST", prefix + "/v1/verify", body=dict(sealed))
        except HttpFailure as exc:
            if exc.status == 409:
                _check_verify(409, sealed)
            raise ClusterError(f"cannot validate sealed secret: {exc.message}") from None

    def rotate(self, sealed: Mapping[str, Any]) -> dict[str, Any]:
        from sealkit.kubehttp import HttpFailure

        prefix = self._proxy_prefix()
        try:
            body = self._call("POST", prefix + "/v1/rotate", body=dict(sealed))
        except HttpFailure as exc:
            raise ClusterError(f"cannot re-encrypt secret: {exc.message}") from None
        return _rotated(200, body)


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~:")


def _q(part: str) -> str:
    """``urllib.parse.quote(part, safe=":")``; names and namespaces need no quoting, and
    then urllib.parse (and ipaddress) need not be imported."""
    if _UNRESERVED.issuperset(part):
        return part
    import urllib.parse

    return urllib.parse.quote(part, safe=":")


def kubeconfig_namespace(cluster: ClusterOptions) -> str:
    """The namespace kubectl would use (``-n``, the context's, else ``default``).

    Raises `ClusterError` when there is no kubeconfig at all, as kubeseal fails then too.
    """
    from sealkit.kubeconfig import namespace_of

    return namespace_of(cluster)
