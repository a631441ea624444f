"""`keys import --activate` (pure part): turn a *pending* imported key into a key Secret.

Why two steps: issue 12's key-injection guard makes the controller refuse to write any Secret
carrying the key label (or named with the key prefix in its namespace) from a SealedSecret,
because otherwise anyone allowed to create SealedSecrets could make the controller load a
sealing key of their choosing. So `keys export` seals each key as a Secret the guard allows
and no controller loads: labelled ``sealkit.dev/key-import: pending``, named
``key-import-<key Secret name>``, annotated ``skip-set-owner-references`` (no ownerReference,
so neither the garbage collector nor ``--old-gc-behavior`` deletes it with its SealedSecret)
and *not* ``managed`` (so, once written, no SealedSecret can overwrite it).

Activation relabels such a Secret to a Bitnami key Secret. It is done by someone who can
already write Secrets in the controller's namespace (the right needed to add a key by hand),
and it refuses anything that would weaken the guard's guarantee:

- only Secrets in the controller namespace are considered (a SealedSecret elsewhere writes its
  Secret elsewhere), and only those whose fingerprint the operator named (from the export file
  or ``--fingerprint``): a pending Secret someone else planted is never activated unasked;
- the fingerprint is computed from the Secret's own certificate, and the private key must match
  it, so nobody can plant a pending Secret that passes for a key they do not hold;
- the Secret must be exactly a key pair: type ``kubernetes.io/tls``, data ``tls.crt`` and
  ``tls.key`` only, an RSA key of at least 2048 bits matching the certificate.

Refusals are one line and name the Secret and fingerprint, never key material.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sealkit._exceptions import InputError

__all__ = [
    "FINGERPRINT_ANNOTATION",
    "IMPORT_PREFIX",
    "IMPORTED_AT",
    "PENDING",
    "PENDING_LABEL",
    "activated",
    "check_pending",
]

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
PENDING_LABEL = "sealkit.dev/key-import"
PENDING = "pending"
IMPORT_PREFIX = "key-import-"
FINGERPRINT_ANNOTATION = "sealkit.dev/key-fingerprint"
IMPORTED_AT = "sealkit.dev/key-imported-at"
EXPORTED_FROM = "sealkit.dev/key-exported-from"
MIN_KEY_BITS = 2048
# Annotations that would let a SealedSecret write over the key later: never kept.
_DROPPED_ANNOTATIONS = (
    "sealedsecrets.bitnami.com/managed",
    "sealedsecrets.bitnami.com/patch",
    "sealedsecrets.bitnami.com/skip-set-owner-references",
    "kubectl.kubernetes.io/last-applied-configuration",
)


def check_pending(secret: Mapping[str, Any], *, namespace: str) -> str:
    """The fingerprint of a well-formed pending key Secret in `namespace`; `InputError` else."""
    from sealkit.keys import fingerprint, parse_key_secret

    meta = secret.get("metadata") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    if meta.get("namespace") != namespace:
        raise InputError(f"refused: pending Secret {where} is not in the controller namespace")
    labels = meta.get("labels") or {}
    if labels.get(PENDING_LABEL) != PENDING:
        raise InputError(f"refused: Secret {where} is not labelled {PENDING_LABEL}={PENDING}")
    if KEY_LABEL in labels:
        raise InputError(f"refused: Secret {where} already carries {KEY_LABEL}")
    if secret.get("type") != "kubernetes.io/tls":
        raise InputError(f"refused: pending Secret {where} is not of type kubernetes.io/tls")
    data = secret.get("data") or {}
    if not isinstance(data, Mapping) or set(data) != {"tls.crt", "tls.key"}:
        raise InputError(f"refused: pending Secret {where} must hold exactly tls.crt and tls.key")
    try:
        parsed = parse_key_secret(secret, need_cert=True)
    except InputError as exc:
        raise InputError(f"refused: pending Secret {where}: {exc.message}") from None
    if parsed.private_key.key_size < MIN_KEY_BITS:
        raise InputError(
            f"refused: pending Secret {where}: RSA key of {parsed.private_key.key_size} bits "
            f"(at least {MIN_KEY_BITS})"
        )
    return fingerprint(parsed.private_key.public_key())


def activated(secret: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """The key Secret a checked pending Secret becomes (same object: uid, resourceVersion)."""
    out = copy.deepcopy(dict(secret))
    meta = out.setdefault("metadata", {})
    labels = dict(meta.get("labels") or {})
    labels.pop(PENDING_LABEL, None)
    labels[KEY_LABEL] = "active"
    meta["labels"] = labels
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k not in _DROPPED_ANNOTATIONS
    }
    annotations[IMPORTED_AT] = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["annotations"] = annotations
    meta.pop("ownerReferences", None)  # nothing may garbage-collect a key
    meta.pop("managedFields", None)
    meta.pop("finalizers", None)
    return out
