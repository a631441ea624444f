"""`sealkit set`: add or replace one value of an existing SealedSecret, in place.

The value is sealed straight from stdin or a file into the SealedSecret with the *file's own*
scope (the OAEP label comes from its outer metadata, as the controller will read it), so no
plaintext Secret ever touches the disk. The file is edited through `sealkit.yamlrt`: YAML keeps
its comments, quoting and key order, JSON stays JSON; the rewrite is atomic.

Editing a twin made by `sealkit seal-tree` drops its ``sealkit.dev/source-digest`` annotation:
the twin no longer matches its plaintext source, and ``seal-tree --check`` must say so.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = ["SetResult", "set_value", "validate_key"]

# Kubernetes' Secret key rule (IsConfigMapKey).
_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")


def validate_key(key: str) -> str:
    if not key or len(key) > 253 or not _KEY_RE.match(key):
        raise UsageError(
            f'invalid key "{key}": a Secret key must consist of alphanumeric characters, '
            "'-', '_' or '.'"
        )
    return key


@dataclass(frozen=True)
class SetResult:
    text: str  # the whole file, rewritten
    namespace: str
    name: str
    key: str
    replaced: bool  # the key existed before


def _sealed_secrets(docs: list[Any]) -> list[MutableMapping[str, Any]]:
    found: list[MutableMapping[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, MutableMapping):
            continue
        if doc.get("kind") == "SealedSecret":
            found.append(doc)
        elif doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            found.extend(
                i
                for i in doc["items"]
                if isinstance(i, MutableMapping) and i.get("kind") == "SealedSecret"
            )
    return found


def _choose(found: list[MutableMapping[str, Any]], name: str | None, source: str) -> Any:
    if not found:
        raise InputError(f"{source}: no SealedSecret found")
    if name:
        matches = [d for d in found if (d.get("metadata") or {}).get("name") == name]
        if not matches:
            raise InputError(f'{source}: no SealedSecret named "{name}"')
        if len(matches) > 1:
            raise InputError(f'{source}: several SealedSecrets named "{name}"')
        return matches[0]
    if len(found) > 1:
        names = ", ".join(str((d.get("metadata") or {}).get("name") or "?") for d in found)
        raise UsageError(
            f"{source} holds {len(found)} SealedSecrets ({names}); choose one with --name"
        )
    return found[0]


def set_value(
    text: str,
    key: str,
    value: bytes,
    public_key: RSAPublicKey,
    *,
    name: str | None = None,
    source: str = "file",
    fingerprint: str | None = None,
) -> SetResult:
    """Seal ``value`` under ``key`` into the chosen SealedSecret of ``text``; pure, no I/O."""
    from sealkit.model import seal_value
    from sealkit.scopes import Scope, scope_of
    from sealkit.tree import CERT_ANNOTATION, DIGEST_ANNOTATION
    from sealkit.yamlrt import dump_roundtrip, load_roundtrip

    validate_key(key)
    rt = load_roundtrip(text, source=source)
    target = _choose(_sealed_secrets(rt.docs), name, source)
    meta = target.get("metadata")
    if not isinstance(meta, MutableMapping):
        raise InputError(f"{source}: SealedSecret has no metadata")
    scope = scope_of(meta)
    namespace = str(meta.get("namespace") or "")
    obj_name = str(meta.get("name") or "")
    if scope is Scope.STRICT and not obj_name:
        raise InputError(f"{source}: SealedSecret has no metadata.name")
    if scope is not Scope.CLUSTER_WIDE and not namespace:
        raise InputError(
            f"{source}: SealedSecret {obj_name} has no metadata.namespace "
            f"(needed by its {scope} scope)"
        )

    blob = seal_value(value, public_key, scope=scope, namespace=namespace, name=obj_name)

    spec = target.get("spec")
    if spec is None:
        target["spec"] = spec = {}
    if not isinstance(spec, MutableMapping):
        raise InputError(f"{source}: SealedSecret spec is not a map")
    encrypted = spec.get("encryptedData")
    if encrypted is None:
        spec["encryptedData"] = encrypted = {}
    if not isinstance(encrypted, MutableMapping):
        raise InputError(f"{source}: SealedSecret spec.encryptedData is not a map")
    replaced = key in encrypted
    encrypted[key] = blob

    annotations = meta.get("annotations")
    if isinstance(annotations, MutableMapping):
        annotations.pop(DIGEST_ANNOTATION, None)
        if fingerprint is None or annotations.get(CERT_ANNOTATION) != fingerprint:
            annotations.pop(CERT_ANNOTATION, None)
        if not annotations:
            del meta["annotations"]
    return SetResult(dump_roundtrip(rt), namespace, obj_name, key, replaced)
