"""The one SealedSecret model: Secret <-> SealedSecret, as kubeseal and the controller do it.

Everything here works on plain dicts and is shared by the CLI (seal, ``--recovery-unseal``,
``--validate``), the controller's reconciler and its HTTP API (``/v1/verify``, ``/v1/rotate``),
as upstream shares its one ``Unseal``; `tests/controller/test_model_agreement.py` feeds the same
SealedSecrets to both and compares.

`seal_secret` follows kubeseal's seal path: reject empty data (unless allowed), apply the
``--name``/``-n``/``--scope`` overrides, strip server-side fields, the last-applied annotations
(they hold cleartext, upstream #227) and ownerReferences (#243), then encrypt ``data`` (base64
decoded first) and ``stringData`` (UTF-8; sealed after ``data`` so it wins on a collision).

`unseal` is the inverse. It takes the OAEP label from the SealedSecret's *outer* metadata, tries
the hinted key first, and fails as a whole if any value does not open: no partial Secret is ever
produced. `verify` and `reencrypt` only decrypt ``encryptedData`` and never render templates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from sealkit._exceptions import InputError, UnsealError
from sealkit._record import TYPE_CHECKING, Record
from sealkit.scopes import Scope, label_for, scope_of, with_scope_annotations

if TYPE_CHECKING:
    from typing import Any

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "SEALED_SECRET_API_VERSION",
    "SEALED_SECRET_KIND",
    "SERVER_FIELDS",
    "SKIP_SET_OWNER_REFERENCES_ANNOTATION",
    "Unsealed",
    "is_sealed_secret",
    "is_secret",
    "owner_reference",
    "reencrypt",
    "seal_secret",
    "seal_value",
    "secret_values",
    "strip_server_fields",
    "unseal",
    "unseal_sealed_secret",
    "verify",
]

SEALED_SECRET_API_VERSION = "bitnami.com/v1alpha1"
SEALED_SECRET_KIND = "SealedSecret"
SKIP_SET_OWNER_REFERENCES_ANNOTATION = "sealedsecrets.bitnami.com/skip-set-owner-references"

# Set by the apiserver, never by a user: stripped from every metadata the model copies.
SERVER_FIELDS = (
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "managedFields",
)
_LAST_APPLIED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
)
_EMPTY_DATA_MESSAGE = (
    "secret.data is empty in input Secret, assuming this is an error and aborting. "
    "To work with empty data, --allow-empty-data can be used"
)

NamespaceSource = str | Callable[[], str] | None


def _clone(value: Any) -> Any:
    """Deep copy of plain YAML/JSON data (the `copy` module costs cold-start time)."""
    if isinstance(value, Mapping):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def strip_server_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``metadata`` without `SERVER_FIELDS` and the last-applied annotations."""
    out: dict[str, Any] = {k: _clone(v) for k, v in metadata.items() if k not in SERVER_FIELDS}
    annotations = {
        k: v
        for k, v in (out.pop("annotations", None) or {}).items()
        if k not in _LAST_APPLIED_ANNOTATIONS
    }
    if annotations:
        out["annotations"] = annotations
    return out


def owner_reference(sealed: Mapping[str, Any]) -> dict[str, Any]:
    """The one controller ownerReference a Secret carries back to its SealedSecret."""
    meta = sealed.get("metadata") or {}
    return {
        "apiVersion": SEALED_SECRET_API_VERSION,
        "kind": SEALED_SECRET_KIND,
        "name": meta.get("name") or "",
        "uid": meta.get("uid") or "",
        "controller": True,
    }


def is_secret(doc: Any) -> bool:
    return (
        isinstance(doc, Mapping)
        and doc.get("kind") == "Secret"
        and (doc.get("apiVersion") in (None, "v1"))
    )


def is_sealed_secret(doc: Any) -> bool:
    return isinstance(doc, Mapping) and doc.get("kind") == SEALED_SECRET_KIND


def _describe(doc: Any) -> str:
    if not isinstance(doc, Mapping):
        return f"a {type(doc).__name__}"
    return f'kind "{doc.get("kind") or ""}"'


def seal_value(
    value: bytes,
    public_key: RSAPublicKey,
    *,
    scope: Scope = Scope.STRICT,
    namespace: str = "",
    name: str = "",
) -> str:
    """One base64 blob for ``--raw`` (and `sealkit set`)."""
    from sealkit.crypto import b64encode, seal

    return b64encode(seal(value, public_key, label_for(scope, namespace, name)))


def seal_secret(
    secret: Mapping[str, Any],
    public_key: RSAPublicKey,
    *,
    scope: Scope | None = None,
    name: str | None = None,
    namespace: str | None = None,
    default_namespace: NamespaceSource = None,
    allow_empty_data: bool = False,
) -> dict[str, Any]:
    """A SealedSecret dict for a v1 Secret dict, with kubeseal's checks and messages.

    ``name`` overrides the input's name (kubeseal ``--name``). ``namespace`` is an explicit
    ``-n``: it fills a missing namespace and must match a present one. ``default_namespace``
    (a string or a zero-argument callable, e.g. the kubeconfig context's namespace) fills a
    missing namespace when the scope is not cluster-wide. ``scope`` other than strict replaces
    the input's scope annotations; ``None``/strict keeps them.
    """
    from sealkit.crypto import b64encode, seal

    if not is_secret(secret):
        raise InputError(f"input is not a v1 Secret ({_describe(secret)})")
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(string_data, Mapping):
        raise InputError("data and stringData must be maps of strings")
    if not data and not string_data and not allow_empty_data:
        raise InputError(_EMPTY_DATA_MESSAGE)

    metadata: dict[str, Any] = _clone(dict(secret.get("metadata") or {}))
    if name:
        metadata["name"] = name
    if not metadata.get("name"):
        raise InputError("missing metadata.name in input Secret")
    if namespace and metadata.get("namespace") and metadata["namespace"] != namespace:
        raise InputError(
            f'namespace mismatch: input secret is in namespace "{metadata["namespace"]}" '
            f'but "{namespace}" was specified'
        )
    if scope is not None and scope is not Scope.STRICT:
        metadata["annotations"] = with_scope_annotations(metadata.get("annotations"), scope)
    effective_scope = scope_of(metadata)
    if effective_scope is not Scope.CLUSTER_WIDE and not metadata.get("namespace"):
        fallback = namespace or (
            default_namespace() if callable(default_namespace) else default_namespace
        )
        if fallback:
            metadata["namespace"] = fallback
    if effective_scope is not Scope.CLUSTER_WIDE and not metadata.get("namespace"):
        raise InputError("secret must declare a namespace")

    metadata = strip_server_fields(metadata)
    label = label_for(effective_scope, metadata.get("namespace"), metadata["name"])
    plaintexts = secret_values(secret)
    encrypted = {k: b64encode(seal(v, public_key, label)) for k, v in sorted(plaintexts.items())}

    outer: dict[str, Any] = {"name": metadata["name"]}
    if metadata.get("namespace"):
        outer["namespace"] = metadata["namespace"]
    scope_annotations = with_scope_annotations(None, effective_scope)
    if scope_annotations:
        outer["annotations"] = scope_annotations
    template: dict[str, Any] = {"metadata": metadata}
    if secret.get("type"):
        template["type"] = secret["type"]
    if secret.get("immutable") is not None:
        template["immutable"] = secret["immutable"]
    return {
        "kind": SEALED_SECRET_KIND,
        "apiVersion": SEALED_SECRET_API_VERSION,
        "metadata": outer,
        "spec": {"template": template, "encryptedData": encrypted},
    }


def secret_values(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """The plaintext bytes per key, as kubeseal seals them: `data` decoded, then `stringData`.

    `stringData` comes second, so it wins a collision, as in kubeseal and the apiserver.
    """
    from sealkit.crypto import b64decode

    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(string_data, Mapping):
        raise InputError("data and stringData must be maps of strings")
    values: dict[str, bytes] = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise InputError(f"data.{key} must be a base64 string")
        try:
            values[str(key)] = b64decode(value)
        except InputError:
            raise InputError(f"illegal base64 data in data.{key}") from None
    for key, value in string_data.items():
        if not isinstance(value, str):
            raise InputError(f"stringData.{key} must be a string")
        values[str(key)] = value.encode("utf-8")
    return values


class Unsealed(Record):
    """What `unseal` produced: the Secret, and the key that opened it (None: nothing to open).
    (A `Record` and a plain class below: no dataclasses import, and no per-field compile()
    of typing.NamedTuple, on the CLI's seal path.)"""

    secret: dict[str, Any]
    opened_by: RSAPrivateKey | None


class RsaOps:
    """RSA private-key operations spent (one per key tried per value): what the controller's
    HTTP rate limiter charges, so that a big request costs what it makes the server do."""

    __slots__ = ("count",)

    def __init__(self, count: int = 0) -> None:
        self.count = count

    def __repr__(self) -> str:
        return f"RsaOps(count={self.count})"


class _Opener:
    """Decrypts blobs for one label, moving the key that worked to the front.

    With the hinted key first, a SealedSecret costs one RSA operation per value, not one per key.
    """

    def __init__(
        self,
        keys: Sequence[RSAPrivateKey],
        hint: RSAPrivateKey | None,
        label: bytes,
        ops: RsaOps | None = None,
    ) -> None:
        self.keys = sorted(keys, key=lambda k: k is not hint) if hint is not None else list(keys)
        self.label = label
        self.opened_by: RSAPrivateKey | None = None
        self.ops = ops if ops is not None else RsaOps()

    def open(self, text: Any) -> bytes:
        from sealkit.crypto import b64decode, unseal_with_index

        try:
            plaintext, index = unseal_with_index(b64decode(str(text)), self.keys, self.label)
        except UnsealError:
            self.ops.count += max(1, len(self.keys))
            raise
        self.ops.count += index + 1
        if index:
            self.keys.insert(0, self.keys.pop(index))
        self.opened_by = self.opened_by or self.keys[0]
        return plaintext

    def open_all(self, blobs: Mapping[str, Any]) -> dict[str, bytes]:
        """Every value, all or nothing; the error names the keys that failed, never contents."""
        opened: dict[str, bytes] = {}
        failed: list[str] = []
        for key in sorted(blobs):
            try:
                opened[str(key)] = self.open(blobs[key])
            except (UnsealError, InputError):
                failed.append(str(key))
        if failed:
            raise UnsealError(f"no key could decrypt secret ({', '.join(failed)})")
        return opened

    def open_legacy(self, blob: Any) -> dict[str, bytes]:
        """The deprecated v1 ``spec.data``: one blob holding a whole v1 Secret as JSON."""
        from sealkit.crypto import b64decode

        try:
            inner = json.loads(self.open(blob))
            raw = inner.get("data") if isinstance(inner, Mapping) else None
            return {str(k): b64decode(str(v)) for k, v in (raw or {}).items()}
        except (UnsealError, InputError, ValueError, AttributeError):
            raise UnsealError("no key could decrypt secret (data)") from None


def _parts(sealed: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], bytes]:
    """(outer metadata, spec, OAEP label); the label comes from the OUTER metadata only."""
    if not is_sealed_secret(sealed):
        raise InputError(f"input is not a SealedSecret ({_describe(sealed)})")
    outer = sealed.get("metadata") or {}
    spec = sealed.get("spec") or {}
    if not isinstance(outer, Mapping) or not isinstance(spec, Mapping):
        raise InputError("SealedSecret metadata and spec must be maps")
    label = label_for(scope_of(outer), outer.get("namespace") or "", outer.get("name") or "")
    return outer, spec, label


def _template(spec: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(spec.template, its metadata), both checked to be maps."""
    template = spec.get("template") or {}
    metadata = template.get("metadata") or {} if isinstance(template, Mapping) else None
    if not isinstance(metadata, Mapping):
        raise InputError("SealedSecret spec.template and its metadata must be maps")
    return template, metadata


def _encrypted(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    encrypted = spec.get("encryptedData") or {}
    return encrypted if isinstance(encrypted, Mapping) else {}  # Go empties a malformed map


def unseal(
    sealed: Mapping[str, Any],
    private_keys: Sequence[RSAPrivateKey],
    *,
    hint: RSAPrivateKey | None = None,
    render_templates: bool = True,
    accept_v1_data: bool = True,
) -> Unsealed:
    """The v1 Secret a SealedSecret unseals to, as the controller writes it; all or nothing.

    Upstream's one ``Unseal`` (compat §5): copy the template metadata (server fields stripped),
    type (default ``Opaque``, what the apiserver stores) and immutable; decrypt every
    ``encryptedData`` value with the label from the outer metadata, ``hint`` first; render
    ``template.data`` (if ``render_templates``; the HTTP endpoints never render); force name and
    namespace; set the controller ownerReference unless the template opts out. Raises
    `UnsealError` (naming failed keys only), `TemplateError` or `InputError`.
    """
    from sealkit.crypto import b64encode

    outer, spec, label = _parts(sealed)
    template, template_meta = _template(spec)
    encrypted = _encrypted(spec)
    opener = _Opener(private_keys, hint, label)
    legacy: dict[str, bytes] = {}
    if spec.get("data"):
        if encrypted:
            raise InputError("SealedSecret has both spec.data and spec.encryptedData")
        if not accept_v1_data:
            raise InputError(
                "deprecated v1 spec.data is not accepted (--accept-deprecated-v1-data)"
            )
        legacy = opener.open_legacy(spec["data"])
    data = opener.open_all(encrypted)
    template_data = template.get("data")
    if render_templates and isinstance(template_data, Mapping) and template_data:
        # v0.37+ sibling context, v0.40 null-omit, encryptedData wins: sealkit.templates owns it.
        from sealkit.templates import build_secret_data

        data = build_secret_data(data, template_data)
    data = {**legacy, **data}

    metadata = strip_server_fields(template_meta)
    metadata["name"] = outer.get("name") or ""
    metadata["namespace"] = outer.get("namespace") or ""
    if (metadata.get("annotations") or {}).get(SKIP_SET_OWNER_REFERENCES_ANNOTATION) != "true":
        metadata["ownerReferences"] = [owner_reference(sealed)]
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata}
    if data:
        secret["data"] = {k: b64encode(v) for k, v in sorted(data.items())}
    secret["type"] = template.get("type") or "Opaque"
    if template.get("immutable") is not None:
        secret["immutable"] = bool(template["immutable"])
    return Unsealed(secret, opener.opened_by)


def unseal_sealed_secret(
    sealed: Mapping[str, Any],
    private_keys: Sequence[RSAPrivateKey],
    *,
    render_templates: bool = True,
) -> dict[str, Any]:
    """`unseal`, the Secret only (``--recovery-unseal``, the public API)."""
    return unseal(sealed, private_keys, render_templates=render_templates).secret


def verify(
    sealed: Mapping[str, Any], private_keys: Sequence[RSAPrivateKey], ops: RsaOps | None = None
) -> bool:
    """True if every ``encryptedData`` value (or the deprecated ``data`` blob) opens.

    Never renders ``template.data``: the answer depends on decryption only (no oracle).
    `ops`, if given, accumulates the RSA operations spent.
    """
    _, spec, label = _parts(sealed)
    opener = _Opener(private_keys, None, label, ops)
    try:
        if _encrypted(spec):
            opener.open_all(_encrypted(spec))
        elif spec.get("data"):
            opener.open(spec["data"])
    except (UnsealError, InputError):
        return False
    return True


def _template_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    out = strip_server_fields(meta)
    if not out.get("labels"):
        out.pop("labels", None)
    out["creationTimestamp"] = None
    # Go's ObjectMeta field order, so rotated JSON looks like upstream's.
    from sealkit.output import OBJECT_META_ORDER

    known = {k: out[k] for k in OBJECT_META_ORDER if k in out}
    return {**known, **{k: out[k] for k in sorted(out) if k not in known}}


def reencrypt(
    sealed: Mapping[str, Any],
    private_keys: Sequence[RSAPrivateKey],
    public_key: RSAPublicKey,
    ops: RsaOps | None = None,
) -> tuple[dict[str, Any], bool]:
    """Re-seal every ``encryptedData`` value with ``public_key``, keeping the scope.

    The outer metadata (server fields stripped) replaces ``template.metadata`` first, as
    upstream does since #1885: the label, and so the scope, is decided by the outer metadata,
    and a template must not carry a different name, namespace or scope. ``template.type``,
    ``immutable`` and ``data`` are kept verbatim and never rendered. Returns the new object
    (without apiVersion/kind, like upstream's ``/v1/rotate``) and whether the template metadata
    was overwritten. Raises `UnsealError` or `InputError` (deprecated ``spec.data``).
    """
    from sealkit.crypto import b64encode, seal

    outer, spec, label = _parts(sealed)
    if spec.get("data") and not spec.get("encryptedData"):
        raise InputError("deprecated spec.data cannot be rotated; re-seal the Secret")
    template, old_meta = _template(spec)
    new_meta = _template_meta(outer)
    overwritten = template.get("metadata") is not None and _template_meta(old_meta) != new_meta
    plain = _Opener(private_keys, None, label, ops).open_all(_encrypted(spec))
    out_meta: dict[str, Any] = {"name": outer.get("name")}
    if outer.get("namespace"):
        out_meta["namespace"] = outer["namespace"]
    out_meta["creationTimestamp"] = None
    markers = with_scope_annotations(None, scope_of(outer))
    if markers:
        out_meta["annotations"] = markers
    new_template: dict[str, Any] = {"metadata": new_meta}
    for field in ("type", "immutable", "data"):
        if template.get(field) is not None:
            new_template[field] = template[field]
    encrypted = {k: b64encode(seal(plain[k], public_key, label)) for k in sorted(plain)}
    spec_out = {"template": new_template, "encryptedData": encrypted}
    return {"metadata": out_meta, "spec": spec_out}, overwritten
