"""The controller's Vault/OpenBao client for the key backup and key wrapping (hvac, lazily).

Two ways to log in: a token (``VAULT_TOKEN``; tests, operators) or Kubernetes auth with the
pod's ServiceAccount token (``--key-backup-vault-role`` / ``--key-wrap-vault-role``), which is
what runs in a cluster. `VaultUnavailable` carries a one-line reason: the exception type only,
never a request or response body (they would hold key material).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["JWT_FILE_ENV", "SA_TOKEN_FILE", "VaultLogin", "VaultUnavailable"]

SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# Another token file for the role login, e.g. a projected token with a Vault audience, or a
# TokenRequest token for a controller run outside a pod (the tests do that).
JWT_FILE_ENV = "SEALKIT_VAULT_JWT_FILE"


class VaultUnavailable(Exception):
    """Vault could not be reached or refused the login."""


class VaultLogin:
    def __init__(
        self,
        *,
        addr: str,
        token: str = "",
        role: str = "",
        auth_mount: str = "kubernetes",
        jwt_file: str = SA_TOKEN_FILE,
    ) -> None:
        self.addr, self.token, self.role = addr, token, role
        self.auth_mount, self.jwt_file = auth_mount, jwt_file
        self._client: Any = None

    @classmethod
    def from_env(cls, role: str = "", env: Mapping[str, str] | None = None) -> VaultLogin:
        env = os.environ if env is None else env
        addr = env.get("VAULT_ADDR", "")
        if not addr:
            raise ValueError("needs VAULT_ADDR")
        if not role and not env.get("VAULT_TOKEN"):
            raise ValueError("needs VAULT_TOKEN or a Kubernetes auth role")
        return cls(
            addr=addr,
            token=env.get("VAULT_TOKEN", ""),
            role=role,
            jwt_file=env.get(JWT_FILE_ENV) or SA_TOKEN_FILE,
        )

    def client(self) -> Any:
        try:
            import hvac
        except ImportError:
            raise VaultUnavailable("hvac is not installed (pip install 'sealkit[vault]')") from None
        try:
            if self._client is not None and self._client.is_authenticated():
                return self._client
            client = hvac.Client(url=self.addr, token=self.token or None, timeout=15)
            if self.role:
                jwt = Path(self.jwt_file).read_text().strip()
                client.auth.kubernetes.login(self.role, jwt, mount_point=self.auth_mount)
        except OSError as exc:
            raise VaultUnavailable(f"vault login failed ({type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 - hvac/requests errors: the type only
            raise VaultUnavailable(f"vault unreachable ({type(exc).__name__})") from None
        self._client = client
        return client
