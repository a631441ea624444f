"""How the CLI reaches the sealed-secrets controller: the only module doing network I/O.

Two transports, one small surface (`ControllerGateway`: ``cert_pem``, ``verify``, ``rotate``):

* `ProxyGateway` goes through the apiserver's service proxy exactly as kubeseal does: GET the
  controller Service, take ``spec.ports[0].name``, then talk to
  ``/api/v1/namespaces/<ns>/services/http:<name>:<port>/proxy/v1/...``. It builds its client
  with ``new_client_from_config`` (no global kube config state) and imports ``kubernetes``
  only when used, which keeps the offline ``--cert`` path fast.
* `DirectGateway` talks to a controller URL (sealkit's ``--controller-url``), for clusters
  whose apiserver cannot proxy to pods (private GKE/EKS, upstream #317 #694).

`fetch_url` serves ``--cert http(s)://`` and ``file://``. `kubeconfig_namespace` reads the
current context's namespace with PyYAML, without the kubernetes client.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

from sealkit._exceptions import ClusterError, InputError, UnsealError

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

    def __init__(
        self,
        *,
        controller_name: str = DEFAULT_CONTROLLER_NAME,
        controller_namespace: str = DEFAULT_CONTROLLER_NAMESPACE,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.name = controller_name
        self.namespace = controller_namespace
        self.kubeconfig = kubeconfig
        self.context = context
        self.timeout = timeout
        self._client: Any = None
        self._prefix: str | None = None

    def _api(self) -> Any:
        if self._client is None:
            from kubernetes.config import new_client_from_config
            from kubernetes.config.config_exception import ConfigException

            try:
                self._client = new_client_from_config(
                    config_file=self.kubeconfig, context=self.context, persist_config=False
                )
            except (ConfigException, OSError, TypeError, ValueError) as exc:
                reason = _one_line(exc).rstrip(".")
                raise ClusterError(f"invalid configuration: {reason}") from None
        return self._client

    def _call(self, method: str, path: str, *, body: Any = None, accept: str = "*/*") -> bytes:
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        try:
            response = api.call_api(
                path,
                method,
                header_params={"Accept": accept, "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            raise _ProxyFailure(exc.status or 0, _status_message(exc)) from None
        except Exception as exc:  # urllib3 connection errors, TLS errors, timeouts
            raise _ProxyFailure(0, _one_line(exc)) from None
        return response.data

    def _proxy_prefix(self) -> str:
        if self._prefix is None:
            service_path = f"/api/v1/namespaces/{_q(self.namespace)}/services/{_q(self.name)}"
            try:
                service = json.loads(self._call("GET", service_path, accept="application/json"))
            except _ProxyFailure as exc:
                raise ClusterError(
                    f"cannot get sealed secret service: {exc.message}. Please, use the flag "
                    "--controller-name and --controller-namespace to set up the name and "
                    "namespace of the sealed secrets controller"
                ) from None
            ports = (service.get("spec") or {}).get("ports") or [{}]
            port_name = ports[0].get("name") or ""
            self._prefix = (
                f"/api/v1/namespaces/{_q(self.namespace)}/services/"
                f"{_q(f'http:{self.name}:{port_name}')}/proxy"
            )
        return self._prefix

    def cert_pem(self) -> bytes:
        prefix = self._proxy_prefix()
        try:
            return self._call("GET", prefix + "/v1/cert.pem", accept=_PEM_ACCEPT)
        except _ProxyFailure as exc:
            raise ClusterError(f"cannot fetch certificate: {exc.message}") from None

    def verify(self, sealed: Mapping[str, Any]) -> None:
        prefix = self._proxy_prefix()
        try:
            self._call("POST", prefix + "/v1/verify", body=dict(sealed))
        except _ProxyFailure as exc:
            if exc.status == 409:
                _check_verify(409, sealed)
            raise ClusterError(f"cannot validate sealed secret: {exc.message}") from None

    def rotate(self, sealed: Mapping[str, Any]) -> dict[str, Any]:
        prefix = self._proxy_prefix()
        try:
            body = self._call("POST", prefix + "/v1/rotate", body=dict(sealed))
        except _ProxyFailure as exc:
            raise ClusterError(f"cannot re-encrypt secret: {exc.message}") from None
        return _rotated(200, body)


class _ProxyFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe=":")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _status_message(exc: Any) -> str:
    """The apiserver's Status message (e.g. 'no endpoints available for service ...')."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        status = json.loads(body or "")
        if isinstance(status, dict) and status.get("message"):
            return " ".join(str(status["message"]).split())
    except ValueError:
        pass
    return f"{exc.status} {exc.reason}".strip()


def kubeconfig_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's (current or named) context, else ``default``.

    Raises `InputError` when there is no kubeconfig at all, as kubeseal fails then too.
    """
    import yaml

    paths: list[str]
    if kubeconfig:
        paths = [kubeconfig]
    elif os.environ.get("KUBECONFIG"):
        paths = [p for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
    else:
        paths = [os.path.expanduser("~/.kube/config")]
    configs: list[dict[str, Any]] = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                loaded = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(loaded, dict):
            configs.append(loaded)
    if not configs:
        raise InputError(
            "secret must declare a namespace (no -n flag and no kubeconfig to take it from)"
        )
    current = context or next((c["current-context"] for c in configs if c.get("current-context")),
                              None)
    for config in configs:
        for entry in config.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == current:
                namespace = (entry.get("context") or {}).get("namespace")
                return str(namespace) if namespace else "default"
    return "default"
