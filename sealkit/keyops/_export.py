"""Keys that travel sealed: `keys export --to-cert` / `keys import` (pure part).

Each key Secret becomes a standard SealedSecret sealed for the *other* cluster's certificate,
strict scope, named ``key-import-<key Secret name>``, in the other controller's namespace. Its
template makes the other controller write a *pending* key Secret (``kubernetes.io/tls``,
labelled ``sealkit.dev/key-import: pending``, never the key label): issue 12's key-injection
guard refuses any key Secret written from a SealedSecret, and no controller loads a pending
one. ``skip-set-owner-references`` keeps deleting the SealedSecret from deleting the key, and
the fingerprint (public) is annotated so `keys import --activate` knows what the operator
asked for. Activation (see `_import`) relabels it a Bitnami key Secret. The private key exists
in plaintext only in the two clusters' Secrets and in memory, never in a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from sealkit.keyops._import import (
    EXPORTED_FROM,
    FINGERPRINT_ANNOTATION,
    IMPORT_PREFIX,
    PENDING,
    PENDING_LABEL,
)

__all__ = ["EXPORTED_FROM", "export_keys", "export_fingerprint", "is_key_export", "is_old_export"]

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
SKIP_OWNER = "sealedsecrets.bitnami.com/skip-set-owner-references"


def export_keys(
    secrets: Sequence[Mapping[str, Any]],
    public_key: RSAPublicKey,
    *,
    namespace: str,
    source: str = "",
) -> list[dict[str, Any]]:
    """One SealedSecret per key Secret, sealed for `public_key`, to land in `namespace`."""
    from sealkit.keyops._import import check_pending
    from sealkit.model import seal_secret

    out = []
    for s in secrets:
        meta = s.get("metadata") or {}
        data = s.get("data") or {}
        if not data.get("tls.key") or not data.get("tls.crt"):
            raise InputError(f"key Secret {meta.get('name')!r} has no tls.key/tls.crt")
        name = f"{IMPORT_PREFIX}{meta.get('name')}"
        plain: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {PENDING_LABEL: PENDING},
                "annotations": {SKIP_OWNER: "true"},
            },
            "data": {"tls.crt": data["tls.crt"], "tls.key": data["tls.key"]},
        }
        try:  # what the other side's activation will check: refuse to export it otherwise
            fp = check_pending(plain, namespace=namespace)
        except InputError as exc:
            raise InputError(
                f"key Secret {meta.get('name')!r} cannot be exported: "
                f"{exc.message.removeprefix('refused: ')} (a wrapped key? unwrap it first)"
            ) from None
        annotations = {FINGERPRINT_ANNOTATION: fp} | ({EXPORTED_FROM: source} if source else {})
        plain["metadata"]["annotations"].update(annotations)
        doc = seal_secret(plain, public_key)
        doc["metadata"].setdefault("annotations", {}).update(annotations)
        out.append(doc)
    return out


def export_fingerprint(obj: Mapping[str, Any]) -> str:
    """The fingerprint an export claims (checked against the key itself on activation)."""
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(FINGERPRINT_ANNOTATION))


def is_key_export(obj: Mapping[str, Any]) -> bool:
    """A SealedSecret made by `export_keys` (what `keys import` accepts)."""
    labels = _template_labels(obj)
    return (
        labels is not None
        and labels.get(PENDING_LABEL) == PENDING
        and KEY_LABEL not in labels
        and str((obj.get("metadata") or {}).get("name") or "").startswith(IMPORT_PREFIX)
        and export_fingerprint(obj).startswith("SHA256:")
    )


def is_old_export(obj: Mapping[str, Any]) -> bool:
    """An export made before the pending step: its key label is refused by the controller."""
    labels = _template_labels(obj)
    return labels is not None and labels.get(KEY_LABEL) == "active"


def _template_labels(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    template = (spec or {}).get("template") or {}
    enc = (spec or {}).get("encryptedData") or {}
    if not (
        obj.get("kind") == "SealedSecret"
        and isinstance(obj.get("metadata"), Mapping)
        and template.get("type") == "kubernetes.io/tls"
        and isinstance(enc, Mapping)
        and set(enc) == {"tls.crt", "tls.key"}
    ):
        return None
    labels = (template.get("metadata") or {}).get("labels") or {}
    return dict(labels) if isinstance(labels, Mapping) else None
