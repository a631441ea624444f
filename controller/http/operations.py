"""What `/v1/verify` and `/v1/rotate` do to one parsed SealedSecret (pure; no I/O).

Hardening (upstream's advisories GHSA-jpp5-6cf2-prqh, PR #2019/#2049/#1885): neither ever
renders ``template.data``; they only decrypt ``encryptedData``, so a caller cannot make the
controller echo a plaintext through a template (no decryption oracle). Both count the RSA
private-key operations they spend (`Work.rsa_ops`), which the rate limiter charges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from controller.http.body import BadRequest
from sealkit._exceptions import SealkitError
from sealkit.crypto import b64decode, b64encode, seal, unseal_with_index
from sealkit.scopes import Scope, annotation_for, label_for, scope_of

__all__ = ["NotOpenable", "Work", "rotate_sealed_secret", "verify_sealed_secret"]

_STRIPPED_META = (
    "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "managedFields",
)
_LAST_APPLIED = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
)
# Go's ObjectMeta field order, so our compact JSON looks like upstream's.
_META_ORDER = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
)


class NotOpenable(Exception):
    """Some encryptedData value does not open with any loaded key (409)."""


@dataclass
class Work:
    """RSA private-key operations spent so far (one per key tried per value)."""

    rsa_ops: int = 0


def _label(sealed: Mapping[str, Any]) -> bytes:
    # The label always comes from the OUTER metadata, as in the controller (never the template).
    meta = sealed.get("metadata") or {}
    return label_for(scope_of(meta), meta.get("namespace"), meta.get("name"))


def _open_all(blobs: Mapping[str, str], private_keys: Sequence[RSAPrivateKey], label: bytes,
              work: Work) -> dict[str, bytes]:
    """Decrypt every value (all-or-nothing); the key that opened one is tried first next."""
    keys = list(private_keys)
    out: dict[str, bytes] = {}
    for name, text in blobs.items():
        try:
            plain, index = unseal_with_index(b64decode(text), keys, label)
        except SealkitError:
            work.rsa_ops += max(1, len(keys))
            raise NotOpenable() from None
        work.rsa_ops += index + 1
        if index:
            keys.insert(0, keys.pop(index))
        out[name] = plain
    return out


def verify_sealed_secret(sealed: Mapping[str, Any], private_keys: Sequence[RSAPrivateKey],
                         work: Work | None = None) -> bool:
    """True if every ``encryptedData`` value (or the deprecated ``data`` blob) opens."""
    spec = sealed.get("spec") or {}
    label = _label(sealed)
    work = work if work is not None else Work()
    try:
        if spec.get("encryptedData"):
            _open_all(spec["encryptedData"], private_keys, label, work)
        elif spec.get("data"):
            _open_all({"data": spec["data"]}, private_keys, label, work)
    except NotOpenable:
        return False
    return True


def _clean_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in meta.items() if k not in _STRIPPED_META}
    annotations = {k: v for k, v in (out.get("annotations") or {}).items()
                   if k not in _LAST_APPLIED}
    out.pop("annotations", None)
    if annotations:
        out["annotations"] = annotations
    if not out.get("labels"):
        out.pop("labels", None)
    out["creationTimestamp"] = None
    known = {k: out[k] for k in _META_ORDER if k in out}
    rest = {k: out[k] for k in sorted(out) if k not in known}
    return {**known, **rest}


def rotate_sealed_secret(
    sealed: Mapping[str, Any],
    private_keys: Sequence[RSAPrivateKey],
    public_key: RSAPublicKey,
    work: Work | None = None,
) -> tuple[dict[str, Any], bool]:
    """Re-seal every ``encryptedData`` value with ``public_key``, keeping the scope.

    The outer metadata (cleaned of server fields) replaces ``template.metadata`` first, as
    upstream does since #1885: the label, and so the scope, is decided by the outer metadata,
    and a template must not carry a different name, namespace or scope. ``template.type``,
    ``immutable`` and ``data`` are kept verbatim and never rendered. Returns the new object
    (without apiVersion/kind, like upstream's response) and whether the template metadata was
    overwritten. Raises `NotOpenable` or `BadRequest`.
    """
    spec = sealed.get("spec") or {}
    if spec.get("data") and not spec.get("encryptedData"):
        raise BadRequest("deprecated spec.data cannot be rotated; re-seal the Secret")
    outer = sealed.get("metadata") or {}
    template = dict(spec.get("template") or {})
    new_template_meta = _clean_meta(outer)
    old_template_meta = template.get("metadata")
    overwritten = old_template_meta is not None and _clean_meta(old_template_meta) != (
        new_template_meta
    )
    label = _label(sealed)
    plain = _open_all(spec.get("encryptedData") or {}, private_keys, label,
                      work if work is not None else Work())
    encrypted = {k: b64encode(seal(plain[k], public_key, label)) for k in sorted(plain)}
    scope = scope_of(outer)
    out_meta: dict[str, Any] = {"name": outer.get("name")}
    if outer.get("namespace"):
        out_meta["namespace"] = outer["namespace"]
    out_meta["creationTimestamp"] = None
    marker = annotation_for(scope)
    if scope is not Scope.STRICT and marker is not None:
        out_meta["annotations"] = {marker: "true"}
    new_template: dict[str, Any] = {"metadata": new_template_meta}
    for field in ("type", "immutable", "data"):
        if template.get(field) is not None:
            new_template[field] = template[field]
    result = {"metadata": out_meta, "spec": {"template": new_template, "encryptedData": encrypted}}
    return result, overwritten
