"""The small Kubernetes edge: Secret reads/creates and TokenRequest.

The `kubernetes` client is imported lazily: it costs about a second of start-up and most runs
(env/file references, token login) never need it. The client is built from an explicit
kubeconfig (``KUBECONFIG`` or ``~/.kube/config``) or from the in-cluster service account, and
never touches the library's global default configuration.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._errors import BootstrapError

__all__ = ["KubeAccess"]

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeAccess:
    """Lazily-built CoreV1 access; `api_client` may be injected (tests, callers)."""

    def __init__(self, api_client: Any | None = None, *, kubeconfig: str | None = None) -> None:
        self._api_client = api_client
        self._kubeconfig = kubeconfig

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    def _client(self) -> Any:
        if self._api_client is None:
            self._api_client = _build_client(self._kubeconfig)
        return self._api_client

    def read_secret_data(self, namespace: str, name: str) -> Mapping[str, str]:
        """The base64 `data` map of a Secret (raises the client's ApiException on failure)."""
        secret = self.core.read_namespaced_secret(name, namespace)
        return dict(secret.data or {})

    def secret_exists(self, namespace: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Create an Opaque Secret; a 409 (already exists) is an error, never an overwrite."""
        from kubernetes import client

        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={"app.kubernetes.io/managed-by": "vault-bootstrap"},
            ),
            type="Opaque",
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        )
        self.core.create_namespaced_secret(namespace, body)

    def request_token(
        self, namespace: str, name: str, *, audiences: list[str] | None, seconds: int = 600
    ) -> str:
        """A short-lived service-account token from the TokenRequest API."""
        from kubernetes import client

        spec = client.V1TokenRequestSpec(audiences=audiences or [], expiration_seconds=seconds)
        resp = self.core.create_namespaced_service_account_token(
            name, namespace, client.AuthenticationV1TokenRequest(spec=spec)
        )
        return str(resp.status.token)


def _build_client(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not path and Path("~/.kube/config").expanduser().exists():
        path = str(Path("~/.kube/config").expanduser())
    if path:
        return config.new_client_from_config(config_file=path)
    if (_SA_DIR / "token").exists() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        cfg = client.Configuration()
        config.incluster_config.InClusterConfigLoader(
            token_filename=str(_SA_DIR / "token"), cert_filename=str(_SA_DIR / "ca.crt")
        ).load_and_set(client_configuration=cfg)
        return client.ApiClient(cfg)
    raise BootstrapError("Kubernetes access needed but no kubeconfig and not running in a pod")
