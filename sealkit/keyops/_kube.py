"""The key commands' only door to the apiserver: key Secrets and the controller's metrics.

Dicts in, dicts out (`_preload_content=False`), so no client model classes are built. The
kubernetes client is imported only here and only when a command needs the cluster. Errors are
one line (`ClusterError`), never a request body (which would hold key material).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sealkit._exceptions import ClusterError

__all__ = ["KeySecretsGateway"]

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"


class KeySecretsGateway:
    def __init__(
        self,
        *,
        namespace: str,
        kubeconfig: str | None = None,
        context: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.namespace = namespace
        self.kubeconfig, self.context, self.timeout = kubeconfig, context, timeout
        self._client: Any = None

    def _api(self) -> Any:
        if self._client is None:
            from kubernetes.config import new_client_from_config
            from kubernetes.config.config_exception import ConfigException

            try:
                self._client = new_client_from_config(
                    config_file=self.kubeconfig, context=self.context, persist_config=False
                )
            except (ConfigException, OSError, TypeError, ValueError) as exc:
                raise ClusterError(f"invalid configuration: {type(exc).__name__}") from None
        return self._client

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        accept: str = "application/json",
        content_type: str = "application/json",
    ) -> bytes:
        from kubernetes.client.exceptions import ApiException

        try:
            resp = self._api().call_api(
                path,
                method,
                query_params=query or [],
                body=body,
                header_params={"Accept": accept, "Content-Type": content_type},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            message = ""
            try:
                message = str(json.loads(exc.body or "{}").get("message") or "")
            except (TypeError, ValueError):
                pass
            raise ClusterError(f"{method} {path}: {exc.status} {message}"[:300]) from None
        except Exception as exc:  # noqa: BLE001 - connection errors: one line
            raise ClusterError(f"{method} {path}: {type(exc).__name__}") from None
        return bytes(resp.data)

    def _secrets(self) -> str:
        return f"/api/v1/namespaces/{quote(self.namespace)}/secrets"

    def key_secrets(self) -> list[dict[str, Any]]:
        """Every Secret carrying the key label (any value) plus the legacy name."""
        data = json.loads(self._call("GET", self._secrets(), query=[("labelSelector", KEY_LABEL)]))
        return list(data.get("items") or [])

    def secrets_labelled(self, selector: str) -> list[dict[str, Any]]:
        """Secrets of the controller namespace matching a label selector."""
        data = json.loads(self._call("GET", self._secrets(), query=[("labelSelector", selector)]))
        return list(data.get("items") or [])

    def replace(self, secret: Mapping[str, Any]) -> dict[str, Any]:
        name = quote(str(secret["metadata"]["name"]))
        return dict(json.loads(self._call("PUT", f"{self._secrets()}/{name}", body=dict(secret))))

    def create_sealed(self, namespace: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/apis/bitnami.com/v1alpha1/namespaces/{quote(namespace)}/sealedsecrets"
        return dict(json.loads(self._call("POST", path, body=dict(obj))))

    def _sealed_path(self, namespace: str, name: str = "") -> str:
        path = f"/apis/bitnami.com/v1alpha1/namespaces/{quote(namespace)}/sealedsecrets"
        return f"{path}/{quote(name)}" if name else path

    def get_sealed(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._call("GET", self._sealed_path(namespace, name))))
        except ClusterError as exc:
            if ": 404" in str(exc):
                return None
            raise

    def delete_sealed(self, namespace: str, name: str) -> None:
        """Delete a SealedSecret (gone already is fine)."""
        try:
            self._call("DELETE", self._sealed_path(namespace, name))
        except ClusterError as exc:
            if ": 404" not in str(exc):
                raise

    def sealed_status_message(self, namespace: str, name: str) -> str:
        """The SealedSecret's Synced=False condition message, or "" (none, or not found)."""
        path = (
            f"/apis/bitnami.com/v1alpha1/namespaces/{quote(namespace)}/sealedsecrets/{quote(name)}"
        )
        try:
            obj = json.loads(self._call("GET", path))
        except ClusterError as exc:
            if ": 404" in str(exc):
                return ""
            raise
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Synced" and cond.get("status") == "False":
                return str(cond.get("message") or "")
        return ""

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                json.loads(
                    self._call(
                        "GET", f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"
                    )
                )
            )
        except ClusterError as exc:
            if ": 404" in str(exc):
                return None
            raise

    def metrics_via_proxy(self, service: str, namespace: str, port: str = "metrics") -> str:
        path = (
            f"/api/v1/namespaces/{quote(namespace)}/services/"
            f"{quote(f'http:{service}:{port}', safe=':')}/proxy/metrics"
        )
        return self._call("GET", path, accept="text/plain").decode("utf-8", "replace")
