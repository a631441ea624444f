"""Sealing scopes and the OAEP label each one binds a ciphertext to.

=================  ===========================  ==========================================
scope              label                        marker annotation (value exactly "true")
=================  ===========================  ==========================================
strict (default)   ``<namespace>/<name>``        none
namespace-wide     ``<namespace>``               ``sealedsecrets.bitnami.com/namespace-wide``
cluster-wide       empty                        ``sealedsecrets.bitnami.com/cluster-wide``
=================  ===========================  ==========================================

Cluster-wide wins over namespace-wide when both annotations say "true". At unseal time the
label comes from the SealedSecret's *top-level* metadata, never its template.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from sealkit._exceptions import UsageError
from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CLUSTER_WIDE_ANNOTATION",
    "NAMESPACE_WIDE_ANNOTATION",
    "Scope",
    "annotation_for",
    "label_for",
    "parse_scope",
    "scope_of",
    "with_scope_annotations",
]

CLUSTER_WIDE_ANNOTATION = "sealedsecrets.bitnami.com/cluster-wide"
NAMESPACE_WIDE_ANNOTATION = "sealedsecrets.bitnami.com/namespace-wide"


class Scope(enum.Enum):
    STRICT = "strict"
    NAMESPACE_WIDE = "namespace-wide"
    CLUSTER_WIDE = "cluster-wide"

    def __str__(self) -> str:
        return self.value


def parse_scope(text: str) -> Scope:
    """`Scope` from its CLI spelling; anything else is kubeseal's usage error."""
    try:
        return Scope(text)
    except ValueError:
        raise UsageError(
            f'invalid argument "{text}" for "--scope" flag: '
            "must be one of: strict, namespace-wide, cluster-wide"
        ) from None


def scope_of(metadata: Mapping[str, Any] | None) -> Scope:
    """The scope an object's annotations select (cluster-wide > namespace-wide > strict)."""
    annotations = (metadata or {}).get("annotations") or {}
    if annotations.get(CLUSTER_WIDE_ANNOTATION) == "true":
        return Scope.CLUSTER_WIDE
    if annotations.get(NAMESPACE_WIDE_ANNOTATION) == "true":
        return Scope.NAMESPACE_WIDE
    return Scope.STRICT


def label_for(scope: Scope, namespace: str | None, name: str | None) -> bytes:
    """The OAEP label: ``ns/name`` (strict, slash-joined), ``ns``, or empty."""
    if scope is Scope.CLUSTER_WIDE:
        return b""
    if scope is Scope.NAMESPACE_WIDE:
        return (namespace or "").encode()
    return f"{namespace or ''}/{name or ''}".encode()


def annotation_for(scope: Scope) -> str | None:
    """The marker annotation key for a scope (None for strict)."""
    return {
        Scope.CLUSTER_WIDE: CLUSTER_WIDE_ANNOTATION,
        Scope.NAMESPACE_WIDE: NAMESPACE_WIDE_ANNOTATION,
    }.get(scope)


def with_scope_annotations(annotations: Mapping[str, str] | None, scope: Scope) -> dict[str, str]:
    """A copy of ``annotations`` with both scope markers removed and ``scope``'s one added."""
    result = {
        k: v
        for k, v in (annotations or {}).items()
        if k not in (CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION)
    }
    key = annotation_for(scope)
    if key is not None:
        result[key] = "true"
    return result
