"""Test helpers shipped with the package (like `click.testing`): an in-memory `VaultGateway`.

`FakeVaultGateway` records every call and stores written bodies by path. It models just enough
of Vault for executor and phase tests (mount tables, reads of what was written, injected
failures); the real semantics are covered by the integration tests against OpenBao.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._gateway import Health, VaultCallError

__all__ = ["FakeVaultGateway"]


class FakeVaultGateway:
    """An in-memory gateway. `fail` maps a path to the error its next write raises."""

    address = "http://fake-vault"

    def __init__(self, *, health: Health | None = None) -> None:
        self.writes = 0
        self.calls: list[tuple[str, str, bool]] = []  # (verb, path, retry)
        self.store: dict[str, dict[str, Any]] = {}
        self.auth_mounts: dict[str, dict[str, Any]] = {"token/": {"type": "token"}}
        self.secrets_mounts: dict[str, dict[str, Any]] = {
            "sys/": {"type": "system"},
            "cubbyhole/": {"type": "cubbyhole"},
            "identity/": {"type": "identity"},
        }
        self.fail: dict[str, VaultCallError] = {}
        self.token = ""
        self._health = health or Health(status=200, initialized=True, sealed=False)

    def health(self) -> Health:
        self.calls.append(("health", "sys/health", True))
        return self._health

    def set_token(self, token: str) -> None:
        self.token = token

    def lookup_self(self) -> dict[str, Any]:
        return {"policies": ["root"]}

    def login_kubernetes(self, mount: str, role: str, jwt: str) -> str:
        self.calls.append(("login", f"auth/{mount}/login", True))
        return "fake-client-token"

    def initialize(self, shares: int, threshold: int) -> dict[str, Any]:
        self.calls.append(("init", "sys/init", False))
        keys = [f"fake-unseal-key-{i}" for i in range(shares)]
        self._health = Health(status=503, initialized=True, sealed=True)
        return {"keys_base64": keys, "root_token": "fake-root-token"}

    def seal_status(self) -> dict[str, Any]:
        return {"sealed": self._health.sealed}

    def submit_unseal_key(self, key: str) -> dict[str, Any]:
        self.calls.append(("unseal", "sys/unseal", True))
        self._health = Health(status=200, initialized=True, sealed=False)
        return {"sealed": False}

    def read(self, path: str) -> dict[str, Any] | None:
        self.calls.append(("read", path, True))
        if path == "sys/auth":
            return dict(self.auth_mounts)
        if path == "sys/mounts":
            return dict(self.secrets_mounts)
        value = self.store.get(path)
        return dict(value) if value is not None else None

    def list(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix) :].split("/")[0] for p in self.store if p.startswith(prefix)})

    def write(self, path: str, body: Mapping[str, Any], *, retry: bool = True) -> Any:
        self.calls.append(("write", path, retry))
        if path in self.fail:
            raise self.fail.pop(path)
        if path.startswith("sys/auth/") and not path.endswith("/tune"):
            name = path.removeprefix("sys/auth/") + "/"
            if name in self.auth_mounts:
                raise VaultCallError(f"{path}: Vault error: path is already in use at {name}")
            self.auth_mounts[name] = dict(body)
        elif path.startswith("sys/mounts/") and not path.endswith("/tune"):
            name = path.removeprefix("sys/mounts/") + "/"
            if name in self.secrets_mounts:
                raise VaultCallError(f"{path}: Vault error: path is already in use at {name}")
            self.secrets_mounts[name] = dict(body)
        else:
            self.store[path] = dict(body)
        self.writes += 1
        return {}

    def delete(self, path: str) -> None:
        self.calls.append(("delete", path, True))
        self.store.pop(path, None)
        if path.startswith("sys/auth/"):
            self.auth_mounts.pop(path.removeprefix("sys/auth/") + "/", None)
        elif path.startswith("sys/mounts/"):
            self.secrets_mounts.pop(path.removeprefix("sys/mounts/") + "/", None)
        self.writes += 1
