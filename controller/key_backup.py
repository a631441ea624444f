"""Backup before use: a new sealing key is served only once a verified backup of it exists.

Why: upstream serves a new key the moment it is generated, and renewal races the user's backup
(upstream #359, #262, #1533). A Secret sealed with a key that was never backed up is lost with
the cluster. With ``--key-backup=TARGET`` the controller instead:

1. creates the new key Secret labelled ``sealedsecrets.bitnami.com/sealed-secrets-key:
   pending-backup``. Neither upstream nor sealkit loads a key with that label value, so the
   previous key keeps being served by ``/v1/cert.pem`` on every replica;
2. writes the key Secret to the backup target, reads it back and compares ``tls.key`` and
   ``tls.crt`` byte for byte;
3. only then relabels the Secret ``active``; every replica's key informer loads it and it
   becomes the key ``/v1/cert.pem`` serves.

A failing step leaves the key pending; the key manager retries with backoff and never makes a
second key while one is pending. Why the key Secret is written first: a leader that dies between
steps leaves a pending Secret that the next leader finishes, so no key is ever generated, served
and lost. Keys that were active before the flag was set are backed up too; the gauge
``sealkit_keys_unbacked`` counts the keys (pending or active) without a verified backup. Every
failure is logged and recorded as a Warning Event on the key Secret (reason
``KeyBackupFailed``); activation is a Normal Event (``KeyBackedUp``). Messages name the key by
fingerprint and the target by its description, never key material.

Targets (``--key-backup``):

- ``secret:<namespace>``: a copy of each key Secret (same name, no ``active`` label) in a
  namespace of the user's choice, which must differ from the controller's;
- ``vault:<kv-v2 mount>/<path>``: one KV v2 entry per key at ``<path>/<secret name>``
  (``VAULT_ADDR`` and ``VAULT_TOKEN``, or ``--key-backup-vault-role`` for Kubernetes auth);
- ``file:<path>``: a YAML ``kind: List`` of key Secrets, mode 0600, rewritten atomically (for
  tests and single-node setups; ``sealkit --recovery-private-key`` reads it as it is).
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from controller.keyring import KEY_LABEL, KEY_LABEL_ACTIVE, fingerprint_of
from controller.kube_gateway import ApiError
from controller.vault_login import VaultLogin, VaultUnavailable

__all__ = [
    "BACKUP_PENDING",
    "BackupError",
    "BackupGate",
    "BackupPending",
    "BackupTarget",
    "FileBackup",
    "SecretBackup",
    "VaultKVBackup",
    "cert_fingerprint",
    "parse_target",
]

_LOG = logging.getLogger(__name__)
BACKUP_PENDING = "pending-backup"
BACKUP_OF_LABEL = "sealkit.dev/key-backup-of"
_FIELDS = ("tls.crt", "tls.key")


class BackupError(Exception):
    """A backup write or read-back failed; the message is one line, without key material."""


class BackupPending(RuntimeError):
    """Raised into the key manager's retry loop while a key waits for its backup."""


class BackupTarget(Protocol):
    """Where key Secrets are backed up. `read` returns the stored ``data`` map, or None."""

    description: str

    def write(self, secret: Mapping[str, Any]) -> None: ...

    def read(self, name: str) -> Mapping[str, str] | None: ...


def _key_data(secret: Mapping[str, Any]) -> dict[str, str]:
    data = secret.get("data") or {}
    return {f: str(data.get(f) or "") for f in _FIELDS}


def _backup_copy(secret: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    meta = secret.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": meta.get("name"),
            "namespace": namespace,
            "labels": {BACKUP_OF_LABEL: str(meta.get("namespace") or "")},
        },
        "data": _key_data(secret),
    }


class FileBackup:
    """A YAML `kind: List` of key Secrets (mode 0600, atomic rewrite)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.description = f"file:{path}"
        self._lock = threading.Lock()

    def _load(self) -> list[dict[str, Any]]:
        import yaml

        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise BackupError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise BackupError(f"{self.path} is not YAML") from None
        items = doc.get("items") if isinstance(doc, Mapping) else None
        return [i for i in items or [] if isinstance(i, dict)]

    def write(self, secret: Mapping[str, Any]) -> None:
        import yaml

        copy = _backup_copy(secret, str((secret.get("metadata") or {}).get("namespace") or ""))
        copy["metadata"]["labels"][KEY_LABEL] = KEY_LABEL_ACTIVE  # restorable with kubectl
        with self._lock:
            items = [
                i
                for i in self._load()
                if (i.get("metadata") or {}).get("name") != copy["metadata"]["name"]
            ]
            items.append(copy)
            text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})
            try:
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keybackup-")
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except OSError as exc:
                raise BackupError(f"cannot write {self.path}: {exc.strerror}") from None

    def read(self, name: str) -> Mapping[str, str] | None:
        for item in self._load():
            if (item.get("metadata") or {}).get("name") == name:
                return _key_data(item)
        return None


class SecretBackup:
    """A copy of each key Secret in another namespace (no `active` label, so never loaded)."""

    def __init__(self, gateway: Any, namespace: str) -> None:
        self.gw = gateway
        self.namespace = namespace
        self.description = f"secret:{namespace}"

    def write(self, secret: Mapping[str, Any]) -> None:
        copy = _backup_copy(secret, self.namespace)
        name = copy["metadata"]["name"]
        try:
            existing = self.gw.get_secret(self.namespace, name)
            if existing is None:
                self.gw.create_secret(self.namespace, copy)
            else:
                copy["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
                self.gw.replace_secret(self.namespace, name, copy)
        except ApiError as exc:
            raise BackupError(
                f"status {exc.status} writing Secret {self.namespace}/{name}"
            ) from None

    def read(self, name: str) -> Mapping[str, str] | None:
        try:
            got = self.gw.get_secret(self.namespace, name)
        except ApiError as exc:
            raise BackupError(
                f"status {exc.status} reading Secret {self.namespace}/{name}"
            ) from None
        return None if got is None else _key_data(got)


class VaultKVBackup:
    """One KV v2 entry per key Secret: ``<mount>/data/<path>/<name>``, through hvac."""

    def __init__(self, mount: str, path: str, login: VaultLogin) -> None:
        self.mount, self.base = mount, path.strip("/")
        self.description = f"vault:{mount}/{self.base}"
        self.login = login

    def _kv(self) -> Any:
        try:
            return self.login.client().secrets.kv.v2
        except VaultUnavailable as exc:
            raise BackupError(str(exc)) from None

    def write(self, secret: Mapping[str, Any]) -> None:
        name = str((secret.get("metadata") or {}).get("name"))
        payload = {
            **_key_data(secret),
            "namespace": str((secret.get("metadata") or {}).get("namespace") or ""),
        }
        try:
            self._kv().create_or_update_secret(
                path=f"{self.base}/{name}", secret=payload, mount_point=self.mount
            )
        except BackupError:
            raise
        except Exception as exc:  # noqa: BLE001 - hvac/requests errors: name the type only
            raise BackupError(f"vault write failed ({type(exc).__name__})") from None

    def read(self, name: str) -> Mapping[str, str] | None:
        try:
            import hvac.exceptions

            got = self._kv().read_secret_version(
                path=f"{self.base}/{name}", mount_point=self.mount, raise_on_deleted_version=True
            )
        except BackupError:
            raise
        except hvac.exceptions.InvalidPath:
            return None
        except Exception as exc:  # noqa: BLE001
            raise BackupError(f"vault read failed ({type(exc).__name__})") from None
        data = (got or {}).get("data", {}).get("data") or {}
        return {f: str(data.get(f) or "") for f in _FIELDS}


def parse_target(
    spec: str,
    *,
    gateway: Any,
    controller_namespace: str,
    vault_role: str = "",
    env: Mapping[str, str] | None = None,
) -> BackupTarget:
    """``--key-backup`` value -> a target; `ValueError` with a one-line reason when invalid."""
    env = os.environ if env is None else env
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(
            "--key-backup must be secret:<namespace>, vault:<mount>/<path> or file:<path>"
        )
    if kind == "file":
        return FileBackup(rest)
    if kind == "secret":
        if rest == controller_namespace:
            raise ValueError("--key-backup secret namespace must differ from the controller's")
        return SecretBackup(gateway, rest)
    if kind == "vault":
        mount, _, path = rest.partition("/")
        if not mount or not path.strip("/"):
            raise ValueError("--key-backup vault target must be vault:<mount>/<path>")
        try:
            login = VaultLogin.from_env(role=vault_role, env=env)
        except ValueError as exc:
            raise ValueError(f"--key-backup vault target {exc}") from None
        return VaultKVBackup(mount, path, login)
    raise ValueError(f"unknown --key-backup target kind {kind!r}: want secret, vault or file")


def cert_fingerprint(secret: Mapping[str, Any]) -> str:
    """The key's fingerprint from its public `tls.crt` (works for wrapped keys too)."""
    from cryptography import x509

    name = (secret.get("metadata") or {}).get("name")
    try:
        pem = base64.b64decode((secret.get("data") or {}).get("tls.crt") or "")
        public = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise ValueError(f"key Secret {name!r}: tls.crt is not a PEM certificate") from None
    if not isinstance(public, RSAPublicKey):
        raise ValueError(f"key Secret {name!r}: tls.crt is not an RSA certificate")
    return fingerprint_of(public)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except ValueError:
        return b""


class BackupGate:
    """Backs up key Secrets, verifies them, and activates pending ones (leader only)."""

    def __init__(
        self,
        gateway: Any,
        target: BackupTarget,
        namespace: str,
        *,
        registry: Any = None,
        loaded: Callable[[], list[str]] | None = None,
    ) -> None:
        self.gw = gateway
        self.target = target
        self.namespace = namespace
        self._loaded = loaded or list
        self._verified: set[str] = set()  # "name|fingerprint" of keys with a verified backup
        self.unbacked = 0  # keys without a verified backup (the gauge)
        self.pending = 0  # new keys among them, not yet served
        self.activated: set[str] = set()  # names of key Secrets this gate activated
        self.on_activated: Callable[[dict[str, Any]], None] = lambda _secret: None
        self._gauge: Any = None
        self.registry = registry
        if registry is not None:
            from prometheus_client import Gauge

            self._gauge = Gauge(
                "sealkit_keys_unbacked",
                "Sealing keys (pending or active) without a verified backup",
                registry=registry,
            )
            self._gauge.set(0)

    def pending_error(self) -> BackupPending:
        return BackupPending(
            f"{self.pending} new key(s) wait for a verified backup in "
            f"{self.target.description} (see KeyBackupFailed events)"
        )

    def mark_pending(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The key Secret to create: labelled pending-backup instead of active."""
        manifest["metadata"]["labels"][KEY_LABEL] = BACKUP_PENDING
        return manifest

    def backup(self, secret: Mapping[str, Any]) -> None:
        """Write `secret` to the target, read it back and compare; raise `BackupError`."""
        name = str((secret.get("metadata") or {}).get("name"))
        want = _key_data(secret)
        self.target.write(secret)
        got = self.target.read(name)
        if got is None:
            raise BackupError(f"read-back from {self.target.description} found no copy")
        if any(_b64(got.get(f, "")) != _b64(want[f]) or not want[f] for f in _FIELDS):
            raise BackupError(f"read-back from {self.target.description} differs from the key")

    def sweep(self) -> bool:
        """Back up every unbacked key; activate pending ones. True when nothing is left."""
        pending = self.gw.list_secrets(self.namespace, f"{KEY_LABEL}={BACKUP_PENDING}")
        active = self.gw.list_secrets(self.namespace, f"{KEY_LABEL}={KEY_LABEL_ACTIVE}")
        legacy = [
            n
            for n in self._loaded()
            if n not in {(s.get("metadata") or {}).get("name") for s in active}
        ]
        for name in legacy:
            got = self.gw.get_secret(self.namespace, name)
            if got is not None:
                active.append(got)
        left = waiting = 0
        for secret in active:
            if not self._ensure(secret, activate=False):
                left += 1
        for secret in sorted(
            pending, key=lambda s: (s.get("metadata") or {}).get("creationTimestamp") or ""
        ):
            if not self._ensure(secret, activate=True):
                waiting += 1
        left += waiting
        self.unbacked, self.pending = left, waiting
        if self._gauge is not None:
            self._gauge.set(left)
        return left == 0

    def _ensure(self, secret: dict[str, Any], *, activate: bool) -> bool:
        meta = secret.get("metadata") or {}
        name = str(meta.get("name"))
        try:
            fp = cert_fingerprint(secret)
        except ValueError as exc:
            _LOG.error("key backup: skipping %s", exc)
            return not activate
        token = f"{name}|{fp}"
        if token not in self._verified:
            try:
                self.backup(secret)
            except BackupError as exc:
                why = (
                    f"key {fp} in Secret {self.namespace}/{name} is not active yet: backup to "
                    f"{self.target.description} failed: {exc}"
                    if activate
                    else f"active key {fp} in Secret {self.namespace}/{name} has no verified "
                    f"backup: {self.target.description}: {exc}"
                )
                _LOG.warning("%s", why)
                self._event(secret, "Warning", "KeyBackupFailed", why)
                return False
            self._verified.add(token)
            _LOG.info("key %s backed up to %s and verified", fp, self.target.description)
        if not activate:
            return True
        meta.setdefault("labels", {})[KEY_LABEL] = KEY_LABEL_ACTIVE
        try:
            updated = self.gw.replace_secret(self.namespace, name, secret)
        except ApiError as exc:
            _LOG.warning(
                "key %s backed up but not activated: status %s relabelling %s/%s",
                fp,
                exc.status,
                self.namespace,
                name,
            )
            return False
        self.activated.add(name)
        self.on_activated(updated)
        _LOG.info(
            "key %s in Secret %s/%s is active (backed up to %s)",
            fp,
            self.namespace,
            name,
            self.target.description,
        )
        self._event(
            secret,
            "Normal",
            "KeyBackedUp",
            f"key {fp} backed up to {self.target.description}, verified and activated",
        )
        return True

    def _event(self, secret: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        involved = {"apiVersion": "v1", "kind": "Secret", "metadata": secret.get("metadata")}
        try:
            self.gw.emit_event(involved, type_, reason, message)
        except ApiError as exc:
            _LOG.warning("cannot record event %s: status %s", reason, exc.status)
