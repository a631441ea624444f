"""The controller's set of sealing keys, shared by the reconcilers and the HTTP server.

Key Secrets use Bitnami's format and place (type `kubernetes.io/tls`, PKCS#1 `tls.key`, a
self-signed `tls.crt`, label `sealedsecrets.bitnami.com/sealed-secrets-key=active`, plus the
legacy Secret named exactly `<key-prefix>`), so a cluster that ran Bitnami's controller keeps
working unchanged. Keys are never deleted by us; a key Secret that disappears or loses its
`active` label is only unloaded from memory.

Beyond upstream, the ring remembers which key opened each SealedSecret. That gives the reconciler
a hint (try that key first: one RSA operation instead of N) and gives the metrics a per-key usage
count, so that an operator can see when an old key no longer opens anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from sealkit import InputError
from sealkit.keys import fingerprint as fingerprint_of
from sealkit.keys import parse_key_secret

__all__ = [
    "KEY_LABEL",
    "KEY_LABEL_ACTIVE",
    "KeyEntry",
    "KeyRing",
    "ORDER_CERT_NOT_BEFORE",
    "ORDER_SECRET_CREATION",
    "entry_from_secret",
    "fingerprint_of",
    "is_key_secret",
]

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
KEY_LABEL_ACTIVE = "active"
ORDER_CERT_NOT_BEFORE = "CertNotBefore"
ORDER_SECRET_CREATION = "SecretCreationTimestamp"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class KeyEntry:
    """One loaded key: its private half, its certificate and where it came from."""

    secret_name: str
    private_key: RSAPrivateKey
    certificate_pem: bytes
    not_before: datetime
    not_after: datetime
    fingerprint: str
    created: datetime = _EPOCH
    namespace: str = ""

    @property
    def public_key(self) -> RSAPublicKey:
        return self.private_key.public_key()

    def order_time(self, priority: str) -> datetime:
        return self.created if priority == ORDER_SECRET_CREATION else self.not_before

    def __repr__(self) -> str:  # never show key material
        return f"KeyEntry({self.secret_name!r}, {self.fingerprint}, not_before={self.not_before})"


def is_key_secret(secret: Mapping[str, Any], *, key_prefix: str = "sealed-secrets-key") -> bool:
    """A loadable key Secret: labelled `...sealed-secrets-key=active`, or the legacy name."""
    meta = secret.get("metadata") or {}
    labels = meta.get("labels") or {}
    return labels.get(KEY_LABEL) == KEY_LABEL_ACTIVE or meta.get("name") == key_prefix


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return _EPOCH


def entry_from_secret(secret: Mapping[str, Any]) -> KeyEntry:
    """Load one Bitnami-format key Secret with `sealkit.keys.parse_key_secret`.

    The ring needs a matching ``tls.crt`` too (it serves the certificate). The key is loaded
    with `sealkit.keys.check_rsa_key` instead of OpenSSL's full validation (its primality
    proof cost ~2 s of CPU per 4096-bit key under load, so start-up grew with every key); a
    corrupt or mismatched key is still refused. Raises `ValueError` with a one-line reason
    (never key material) when the Secret is unusable.
    """
    try:
        parsed = parse_key_secret(secret, need_cert=True, quick_check=True)
    except InputError as exc:
        raise ValueError(exc.message) from None
    cert, key = parsed.certificate, parsed.private_key
    assert cert is not None  # need_cert
    return KeyEntry(
        secret_name=parsed.name,
        namespace=parsed.namespace,
        private_key=key,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=fingerprint_of(key.public_key()),
        created=_parse_time(parsed.creation_timestamp),
    )


@dataclass
class _Usage:
    by_object: dict[str, str] = field(default_factory=dict)  # "ns/name" -> fingerprint
    counts: dict[str, int] = field(default_factory=dict)  # fingerprint -> objects
    last: str | None = None  # the key that opened a SealedSecret most recently


class KeyRing:
    """Thread-safe, ordered set of keys keyed by fingerprint.

    Readers get immutable snapshots (`entries()`, `latest()`), so the HTTP server and the
    reconcile workers never hold the lock during RSA operations.
    """

    def __init__(self, *, order_priority: str = ORDER_CERT_NOT_BEFORE) -> None:
        if order_priority not in (ORDER_CERT_NOT_BEFORE, ORDER_SECRET_CREATION):
            raise ValueError(
                f"--key-order-priority must be {ORDER_CERT_NOT_BEFORE} or {ORDER_SECRET_CREATION}"
            )
        self._priority = order_priority
        self._lock = threading.RLock()
        self._by_secret: dict[str, KeyEntry] = {}  # secret name -> entry
        self._ordered: tuple[KeyEntry, ...] = ()
        self._usage = _Usage()
        self._listeners: list[Callable[[], None]] = []
        self.version = 0

    # -- membership -------------------------------------------------------------------------
    def add(self, entry: KeyEntry) -> bool:
        """Add or replace the key of `entry.secret_name`; True if the set of keys changed."""
        with self._lock:
            old = self._by_secret.get(entry.secret_name)
            if old is not None and old.fingerprint == entry.fingerprint:
                return False
            self._by_secret[entry.secret_name] = entry
            self._reorder()
        self._notify()
        return True

    def remove(self, secret_name: str) -> bool:
        """Unload the key of a deleted or deactivated Secret (the Secret itself is untouched)."""
        with self._lock:
            if self._by_secret.pop(secret_name, None) is None:
                return False
            self._reorder()
        self._notify()
        return True

    def replace_all(self, entries: Iterable[KeyEntry]) -> None:
        with self._lock:
            self._by_secret = {e.secret_name: e for e in entries}
            self._reorder()
        self._notify()

    def _reorder(self) -> None:
        unique: dict[str, KeyEntry] = {}

        def order(e: KeyEntry) -> tuple[datetime, datetime, str]:
            return (e.order_time(self._priority), e.created, e.secret_name)

        for e in sorted(self._by_secret.values(), key=order):
            unique.setdefault(e.fingerprint, e)  # the same key under two Secrets counts once
        self._ordered = tuple(sorted(unique.values(), key=order))
        self.version += 1

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (outside the lock) after every change of the key set."""
        with self._lock:
            self._listeners.append(callback)

    def _notify(self) -> None:
        for cb in list(self._listeners):
            cb()

    # -- reading ----------------------------------------------------------------------------
    @property
    def order_priority(self) -> str:
        return self._priority

    def entries(self) -> tuple[KeyEntry, ...]:
        """All keys, oldest first by the configured ordering time."""
        return self._ordered

    def latest(self) -> KeyEntry | None:
        ordered = self._ordered
        return ordered[-1] if ordered else None

    def has_keys(self) -> bool:
        return bool(self._ordered)

    def private_keys(self) -> list[RSAPrivateKey]:
        """Private keys, newest first (the likeliest to open a freshly sealed value)."""
        return [e.private_key for e in reversed(self._ordered)]

    def by_fingerprint(self, fingerprint: str) -> KeyEntry | None:
        for e in self._ordered:
            if e.fingerprint == fingerprint:
                return e
        return None

    # -- usage (the key hint and the per-key metric) ----------------------------------------
    def hint(self, object_key: str) -> str | None:
        """Fingerprint of the key that last opened `object_key` ("ns/name"), if any."""
        with self._lock:
            return self._usage.by_object.get(object_key)

    def first_try(self, object_key: str) -> str | None:
        """The key to try first for `object_key`: its own hint, else the key that opened the
        most recent SealedSecret. SealedSecrets arrive in batches sealed by one key (a tree
        sealed on the same day, a restore after a cutoff), so on first sight the last key that
        worked costs one RSA attempt per value where newest-first costs one per newer key."""
        with self._lock:
            return self._usage.by_object.get(object_key) or self._usage.last

    def record_usage(self, object_key: str, fingerprint: str | None) -> None:
        """Remember which key opened `object_key`; None forgets it (deleted or failing)."""
        with self._lock:
            u = self._usage
            old = u.by_object.pop(object_key, None)
            if old is not None:
                u.counts[old] -= 1
                if not u.counts[old]:
                    del u.counts[old]
            if fingerprint is not None:
                u.last = fingerprint
                u.by_object[object_key] = fingerprint
                u.counts[fingerprint] = u.counts.get(fingerprint, 0) + 1

    def usage_counts(self) -> dict[str, int]:
        """fingerprint -> number of SealedSecrets it opened last; every loaded key is listed."""
        with self._lock:
            counts = {e.fingerprint: 0 for e in self._ordered}
            counts.update(self._usage.counts)
            return counts
