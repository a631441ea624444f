"""Keys that travel sealed: `keys export --to-cert` / `keys import` (pure part).

Each key Secret becomes a standard SealedSecret sealed for the *other* cluster's certificate,
strict scope, named like the key Secret, in the other controller's namespace. Its template
makes the other controller write a Bitnami-format key Secret (``kubernetes.io/tls``, labelled
``sealedsecrets.bitnami.com/sealed-secrets-key: active``) and annotates it
``skip-set-owner-references`` so that deleting the SealedSecret never deletes the key. The
other controller loads the key live (its key informers), so importing is just applying the
SealedSecrets: the private key exists in plaintext only in the two clusters' memory and
Secrets, never in a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = ["EXPORTED_FROM", "export_keys", "is_key_export"]

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
SKIP_OWNER = "sealedsecrets.bitnami.com/skip-set-owner-references"
EXPORTED_FROM = "sealkit.dev/key-exported-from"


def export_keys(
    secrets: Sequence[Mapping[str, Any]],
    public_key: RSAPublicKey,
    *,
    namespace: str,
    source: str = "",
) -> list[dict[str, Any]]:
    """One SealedSecret per key Secret, sealed for `public_key`, to land in `namespace`."""
    from sealkit.model import seal_secret

    out = []
    for s in secrets:
        meta = s.get("metadata") or {}
        data = s.get("data") or {}
        if not data.get("tls.key") or not data.get("tls.crt"):
            raise InputError(f"key Secret {meta.get('name')!r} has no tls.key/tls.crt")
        annotations = {SKIP_OWNER: "true"}
        if source:
            annotations[EXPORTED_FROM] = source
        plain = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": meta.get("name"),
                "namespace": namespace,
                "labels": {KEY_LABEL: "active"},
                "annotations": annotations,
            },
            "data": {"tls.crt": data["tls.crt"], "tls.key": data["tls.key"]},
        }
        out.append(seal_secret(plain, public_key))
    return out


def is_key_export(obj: Mapping[str, Any]) -> bool:
    """A SealedSecret made by `export_keys` (what `keys import` accepts)."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    template = (spec or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    enc = (spec or {}).get("encryptedData") or {}
    return (
        obj.get("kind") == "SealedSecret"
        and template.get("type") == "kubernetes.io/tls"
        and labels.get(KEY_LABEL) == "active"
        and set(enc) == {"tls.crt", "tls.key"}
    )
