"""Secret <-> SealedSecret, as kubeseal and the controller do it, on plain dicts.

`seal_secret` follows kubeseal's seal path: reject empty data (unless allowed), apply the
``--name``/``-n``/``--scope`` overrides, strip server-side fields, the last-applied annotations
(they hold cleartext, upstream #227) and ownerReferences (#243), then encrypt ``data`` (base64
decoded first) and ``stringData`` (UTF-8; sealed after ``data`` so it wins on a collision).

`unseal_sealed_secret` is the inverse the controller and ``--recovery-unseal`` need. It takes the
OAEP label from the SealedSecret's *outer* metadata and fails as a whole if any value does not
open: no partial Secret is ever produced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError, UnsealError
from sealkit.scopes import Scope, label_for, scope_of, with_scope_annotations

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "SEALED_SECRET_API_VERSION",
    "SEALED_SECRET_KIND",
    "SKIP_SET_OWNER_REFERENCES_ANNOTATION",
    "is_sealed_secret",
    "is_secret",
    "seal_secret",
    "secret_values",
    "seal_value",
    "unseal_sealed_secret",
]

SEALED_SECRET_API_VERSION = "bitnami.com/v1alpha1"
SEALED_SECRET_KIND = "SealedSecret"
SKIP_SET_OWNER_REFERENCES_ANNOTATION = "sealedsecrets.bitnami.com/skip-set-owner-references"

_SERVER_FIELDS = (
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


def is_secret(doc: Any) -> bool:
    return isinstance(doc, Mapping) and doc.get("kind") == "Secret" and (
        doc.get("apiVersion") in (None, "v1")
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

    for field in _SERVER_FIELDS:
        metadata.pop(field, None)
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k not in _LAST_APPLIED_ANNOTATIONS
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)

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


def unseal_sealed_secret(
    sealed: Mapping[str, Any],
    private_keys: Sequence[RSAPrivateKey],
    *,
    render_templates: bool = True,
) -> dict[str, Any]:
    """The v1 Secret a SealedSecret unseals to; raises `UnsealError` naming failed keys only.

    Steps as upstream: copy the template metadata, type and immutable; decrypt every
    ``encryptedData`` value with the label from the outer metadata; render ``template.data``
    (if ``render_templates``; the HTTP endpoints never render); force name and namespace; set
    the controller ownerReference unless the template opts out.
    """
    from sealkit.crypto import b64decode, b64encode, unseal

    if not is_sealed_secret(sealed):
        raise InputError(f"input is not a SealedSecret ({_describe(sealed)})")
    outer = sealed.get("metadata") or {}
    spec = sealed.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InputError("SealedSecret spec must be a map")
    template = spec.get("template") or {}
    encrypted = spec.get("encryptedData") or {}
    if not isinstance(encrypted, Mapping):  # Go turns a malformed map into an empty one
        encrypted = {}
    name, namespace = outer.get("name") or "", outer.get("namespace") or ""
    label = label_for(scope_of(outer), namespace, name)

    metadata: dict[str, Any] = _clone(dict(template.get("metadata") or {}))
    decrypted: dict[str, bytes] = {}
    failed: list[str] = []
    legacy_data: Mapping[str, Any] = {}
    if spec.get("data"):
        if encrypted:
            raise InputError("SealedSecret has both spec.data and spec.encryptedData")
        legacy_data = _unseal_legacy_v1(spec["data"], private_keys, label)
    for key, value in encrypted.items():
        try:
            decrypted[str(key)] = unseal(b64decode(str(value)), private_keys, label)
        except (UnsealError, InputError):
            failed.append(str(key))
    if failed:
        raise UnsealError(f"no key could decrypt secret ({', '.join(sorted(failed))})")

    data: dict[str, str] = {str(k): str(v) for k, v in legacy_data.items()}
    template_data = template.get("data")
    if render_templates and isinstance(template_data, Mapping) and template_data:
        # v0.37+ sibling context, v0.40 null-omit, encryptedData wins: sealkit.templates owns it.
        from sealkit.templates import build_secret_data

        final = build_secret_data(decrypted, template_data)
        data.update({k: b64encode(v) for k, v in final.items()})
    else:
        data.update({k: b64encode(v) for k, v in decrypted.items()})

    metadata["name"] = name
    metadata["namespace"] = namespace
    annotations = metadata.get("annotations") or {}
    if annotations.get(SKIP_SET_OWNER_REFERENCES_ANNOTATION) == "true":
        metadata.pop("ownerReferences", None)
    else:
        metadata["ownerReferences"] = [
            {
                "apiVersion": SEALED_SECRET_API_VERSION,
                "kind": SEALED_SECRET_KIND,
                "name": name,
                "uid": outer.get("uid") or "",
                "controller": True,
            }
        ]
    secret: dict[str, Any] = {"kind": "Secret", "apiVersion": "v1", "metadata": metadata}
    if template.get("immutable") is not None:
        secret["immutable"] = template["immutable"]
    if data:
        secret["data"] = dict(sorted(data.items()))
    if template.get("type"):
        secret["type"] = template["type"]
    return secret


def _unseal_legacy_v1(
    blob: Any, private_keys: Sequence[RSAPrivateKey], label: bytes
) -> Mapping[str, Any]:
    """The deprecated v1 ``spec.data``: one blob holding a whole v1 Secret as JSON."""
    from sealkit.crypto import b64decode, unseal

    try:
        plaintext = unseal(b64decode(str(blob)), private_keys, label)
    except InputError:
        raise UnsealError("no key could decrypt secret (data)") from None
    except UnsealError:
        raise UnsealError("no key could decrypt secret (data)") from None
    try:
        inner = json.loads(plaintext)
    except ValueError:
        raise UnsealError("no key could decrypt secret (data)") from None
    data = inner.get("data") if isinstance(inner, Mapping) else None
    return data if isinstance(data, Mapping) else {}
