"""Keys wrapped by Vault/OpenBao transit (``--key-wrap=transit:<mount>/<key>``), opt-in.

Why: upstream keeps every private key in plain key Secrets, so whoever reads etcd or the
controller namespace's Secrets holds every key (upstream #64, #779). With wrapping, the key
Secret keeps Bitnami's shape (``kubernetes.io/tls``, the label, the PEM certificate in
``tls.crt``), but ``tls.key`` holds the transit ciphertext (``vault:v1:...``) of the PEM key and
the Secret is annotated ``sealkit.dev/key-wrap: transit:<mount>/<key>``. The controller unwraps
in memory when it loads a key; no PEM private key is written to etcd.

Trade-offs (docs/keys.md): Vault must be reachable for the controller to load wrapped keys;
upstream's controller cannot read them, so rolling back means `sealkit keys unwrap` first.
A key that cannot be unwrapped is skipped with an error log and a Warning Event
``KeyUnwrapFailed`` on its Secret, and retried every ``retry`` seconds until it loads.
"""

from __future__ import annotations

import base64
import copy
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from controller.vault_login import VaultLogin, VaultUnavailable

__all__ = ["WRAP_ANNOTATION", "KeyWrapper", "UnwrapError", "is_wrapped", "parse_wrap"]

_LOG = logging.getLogger(__name__)
WRAP_ANNOTATION = "sealkit.dev/key-wrap"


class UnwrapError(RuntimeError):
    """One-line reason a key could not be wrapped or unwrapped (never key material)."""


def is_wrapped(secret: Mapping[str, Any]) -> bool:
    return bool(((secret.get("metadata") or {}).get("annotations") or {}).get(WRAP_ANNOTATION))


def parse_wrap(spec: str) -> tuple[str, str]:
    """``transit:<mount>/<key>`` -> (mount, key); `ValueError` otherwise."""
    kind, _, rest = spec.partition(":")
    mount, _, key = rest.partition("/")
    if kind != "transit" or not mount or not key or "/" in key:
        raise ValueError("--key-wrap must be transit:<mount>/<key>")
    return mount, key


class KeyWrapper:
    def __init__(
        self, login: VaultLogin, mount: str, key: str, *, gateway: Any = None, retry: float = 10.0
    ) -> None:
        self.login, self.mount, self.key = login, mount, key
        self.spec = f"transit:{mount}/{key}"
        self.gw = gateway
        self.retry = retry
        self._failed: dict[str, dict[str, Any]] = {}  # name -> wrapped Secret waiting
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_unwrapped: Callable[[dict[str, Any]], None] = lambda _s: None

    @staticmethod
    def is_wrapped(secret: Mapping[str, Any]) -> bool:
        return is_wrapped(secret)

    def _transit(self) -> Any:
        return self.login.client().secrets.transit

    def wrap(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The key Secret to store: `tls.key` replaced by its transit ciphertext."""
        out = copy.deepcopy(manifest)
        try:
            got = self._transit().encrypt_data(
                name=self.key, plaintext=out["data"]["tls.key"], mount_point=self.mount
            )
            ciphertext = got["data"]["ciphertext"]
        except VaultUnavailable as exc:
            raise UnwrapError(f"cannot wrap the new key with {self.spec}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - hvac errors: the type only
            raise UnwrapError(
                f"cannot wrap the new key with {self.spec} ({type(exc).__name__})"
            ) from None
        out["data"]["tls.key"] = base64.b64encode(ciphertext.encode()).decode()
        meta = out.setdefault("metadata", {})
        meta.setdefault("annotations", {})[WRAP_ANNOTATION] = self.spec
        return out

    def unwrap(self, secret: Mapping[str, Any]) -> dict[str, Any]:
        """An in-memory copy of `secret` with the PEM `tls.key` (never written anywhere)."""
        out = copy.deepcopy(dict(secret))
        spec = (out.get("metadata") or {}).get("annotations", {}).get(WRAP_ANNOTATION, "")
        name = (out.get("metadata") or {}).get("name")
        try:
            mount, key = parse_wrap(spec)
            ciphertext = base64.b64decode(out["data"]["tls.key"]).decode()
            got = self._transit().decrypt_data(name=key, ciphertext=ciphertext, mount_point=mount)
            out["data"]["tls.key"] = got["data"]["plaintext"]
        except VaultUnavailable as exc:
            raise UnwrapError(f"cannot unwrap key Secret {name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001
            raise UnwrapError(
                f"cannot unwrap key Secret {name} with {spec} ({type(exc).__name__})"
            ) from None
        return out

    def failed(self, secret: Mapping[str, Any], reason: str) -> None:
        """Remember a key that did not unwrap; record why (log + Warning Event)."""
        name = str((secret.get("metadata") or {}).get("name"))
        _LOG.error("%s; retrying every %.0fs", reason, self.retry)
        with self._lock:
            self._failed[name] = dict(secret)
        if self.gw is not None:
            try:
                self.gw.emit_event(
                    {"apiVersion": "v1", "kind": "Secret", "metadata": secret.get("metadata")},
                    "Warning",
                    "KeyUnwrapFailed",
                    reason,
                )
            except Exception as exc:  # noqa: BLE001 - events are best effort
                _LOG.warning("cannot record event KeyUnwrapFailed (%s)", type(exc).__name__)
        self._ensure_thread()

    def forget(self, name: str) -> None:
        with self._lock:
            self._failed.pop(name, None)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._retry_loop, name="key-unwrap", daemon=True
                )
                self._thread.start()

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.retry):
            with self._lock:
                waiting = list(self._failed.values())
            if not waiting:
                return
            for secret in waiting:
                self.on_unwrapped(secret)  # the key manager unwraps and loads, or fails again

    def stop(self) -> None:
        self._stop.set()
