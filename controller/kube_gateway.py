"""The controller's only door to the apiserver: a `KubeGateway` Protocol and its real version.

Everything goes through one `request()` on `controller.kube_http.KubeHttp` (a urllib3 pool;
the official client's ~1,250 modules are never imported by the controller) with dict bodies,
so SealedSecrets (a CRD) and core objects are handled alike. Every request carries a timeout,
so a network outage can never hang a worker. Handing it a `kubernetes.client.ApiClient`
instead (benchmarks and tests that already hold one) still works, through `_ApiClientHttp`.
The in-memory twin for pure tests is `controller.testing.FakeKubeGateway`.

Errors become `ApiError` (with `.status`); messages are kept short and never include request
bodies.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from controller.kube_http import HttpError, KubeHttp
from sealkit import ClusterError

__all__ = [
    "ApiError",
    "KubeGateway",
    "RealKubeGateway",
    "TokenBucket",
    "event_body",
    "sealed_path",
    "secret_path",
]

GROUP, VERSION, PLURAL = "bitnami.com", "v1alpha1", "sealedsecrets"
EVENT_COMPONENT = "sealed-secrets"


class ApiError(ClusterError):
    """An apiserver request failed; `.status` is the HTTP status (0: no answer)."""

    def __init__(
        self,
        message: str,
        status: int = 0,
        reason: str = "",
        causes: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.causes = causes  # (field path, reason, message) of a Status's details.causes


def sealed_path(namespace: str | None, name: str | None = None, *, status: bool = False) -> str:
    base = f"/apis/{GROUP}/{VERSION}"
    path = f"{base}/namespaces/{quote(namespace)}/{PLURAL}" if namespace else f"{base}/{PLURAL}"
    if name:
        path += "/" + quote(name)
        if status:
            path += "/status"
    return path


def secret_path(namespace: str | None, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{quote(namespace)}/secrets" if namespace else "/api/v1/secrets"
    return path + ("/" + quote(name) if name else "")


class KubeGateway(Protocol):
    """What the reconciler and the key manager need from the apiserver (dicts in, dicts out)."""

    def get_sealed(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def patch_sealed_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def replace_secret(
        self, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    def delete_secret(self, namespace: str, name: str, uid: str | None = None) -> None: ...

    def list_secrets(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]: ...

    def emit_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None: ...

    def namespace_exists(self, name: str) -> bool: ...


class TokenBucket:
    """client-go's `--kubeclient-qps`/`--kubeclient-burst` limiter (qps <= 0: unlimited)."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        if self.qps <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(
    involved: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    *,
    count: int = 1,
    now: str | None = None,
) -> dict[str, Any]:
    """A core/v1 Event like client-go's recorder writes (source component `sealed-secrets`).

    The name is derived from the object, reason and message, so a repeated event becomes a
    count bump on the same object (the recorder's aggregation) instead of a new object.
    """
    meta = involved.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    digest = hashlib.sha256(f"{meta.get('uid')}|{type_}|{reason}|{message}".encode()).hexdigest()[
        :16
    ]
    now = now or _micro_now()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{digest}", "namespace": ns},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion") or f"{GROUP}/{VERSION}",
            "kind": involved.get("kind") or "SealedSecret",
            "name": meta.get("name"),
            "namespace": ns,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": EVENT_COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": count,
    }


class _ApiClientHttp:
    """`KubeHttp.request` on a `kubernetes.client.ApiClient` (for callers that hold one)."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Any = (),
        headers: dict[str, str] | None = None,
        body: Any = None,
        timeout: Any = 30.0,
        stream: bool = False,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.call_api(
                path,
                method,
                query_params=list(query),
                header_params=headers or {},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
                _return_http_data_only=True,
            )
        except ApiException as exc:
            body_ = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            raise HttpError(int(exc.status or 0), str(exc.reason or ""), body_) from None


class RealKubeGateway:
    """`KubeGateway` on `controller.kube_http.KubeHttp` (or a `kubernetes` ApiClient)."""

    def __init__(
        self, http: Any, *, qps: float = 5.0, burst: int = 10, request_timeout: float = 30.0
    ) -> None:
        self.http = http if isinstance(http, KubeHttp) else _ApiClientHttp(http)
        self.limiter = TokenBucket(qps, burst)
        self.timeout = request_timeout
        self._event_counts: OrderedDict[str, int] = OrderedDict()
        self._event_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: Any = None,
        stream: bool = False,
        limit: bool = True,
    ) -> Any:
        """One API call; returns parsed JSON (or the raw response when `stream`)."""
        if limit:
            self.limiter.take()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            resp = self.http.request(
                method,
                path,
                query=query or [],
                headers=headers,
                body=body,
                timeout=timeout if timeout is not None else self.timeout,
                stream=stream,
            )
        except HttpError as exc:
            raise _api_error(exc, method, path) from None
        except Exception as exc:  # urllib3 / socket errors: no answer
            raise ApiError(f"{method} {path}: {type(exc).__name__}", 0) from None
        if stream:
            return resp
        data = resp.data
        return json.loads(data) if data else {}

    # -- SealedSecrets ----------------------------------------------------------------------
    def get_sealed(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", sealed_path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def patch_sealed_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self.request(
            "PATCH",
            sealed_path(namespace, name, status=True),
            body=dict(patch),
            content_type="application/merge-patch+json",
        )

    # -- Secrets ----------------------------------------------------------------------------
    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", secret_path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", secret_path(namespace), body=dict(body))

    def replace_secret(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", secret_path(namespace, name), body=dict(body))

    def delete_secret(self, namespace: str, name: str, uid: str | None = None) -> None:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", secret_path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status != 404:
                raise

    def list_secrets(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = self.request("GET", secret_path(namespace), query=query)
        items = result.get("items") or []
        for item in items:
            item.setdefault("apiVersion", "v1")
            item.setdefault("kind", "Secret")
        return items

    # -- events and namespaces --------------------------------------------------------------
    def emit_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        body = event_body(involved, type_, reason, message)
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        path = f"/api/v1/namespaces/{quote(ns)}/events"
        with self._event_lock:
            count = self._event_counts.pop(name, 0) + 1
            self._event_counts[name] = count
            while len(self._event_counts) > 4096:
                self._event_counts.popitem(last=False)
        try:
            if count == 1:
                try:
                    self.request("POST", path, body=body)
                    return
                except ApiError as exc:
                    if exc.status != 409:
                        raise
                    current = self.request("GET", f"{path}/{quote(name)}")
                    count = int(current.get("count") or 1) + 1
                    with self._event_lock:
                        self._event_counts[name] = count
            self.request(
                "PATCH",
                f"{path}/{quote(name)}",
                body={"count": count, "lastTimestamp": body["lastTimestamp"]},
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status == 404:  # the aggregated event expired: start over
                with self._event_lock:
                    self._event_counts.pop(name, None)
                body["count"] = 1
                self.request("POST", path, body=body)
            else:
                raise

    def namespace_exists(self, name: str) -> bool:
        try:
            self.request("GET", f"/api/v1/namespaces/{quote(name)}")
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise


def _api_error(exc: HttpError, method: str, path: str) -> ApiError:
    status = int(exc.status or 0)
    reason = ""
    message = str(exc.reason or "")
    causes: list[tuple[str, str, str]] = []
    try:
        payload = json.loads(exc.body) if exc.body else {}
        reason = str(payload.get("reason") or "")
        message = str(payload.get("message") or message)
        for cause in (payload.get("details") or {}).get("causes") or []:
            causes.append(
                (
                    str(cause.get("field") or ""),
                    str(cause.get("reason") or ""),
                    str(cause.get("message") or ""),
                )
            )
    except (TypeError, ValueError, AttributeError):
        pass
    return ApiError(f"{method} {path}: {status} {message}"[:500], status, reason, tuple(causes))
