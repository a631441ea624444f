"""Scope labels and annotation precedence (upstream's label table)."""

from __future__ import annotations

import pytest

from sealkit import UsageError
from sealkit.scopes import (
    CLUSTER_WIDE_ANNOTATION,
    NAMESPACE_WIDE_ANNOTATION,
    Scope,
    label_for,
    parse_scope,
    scope_of,
    with_scope_annotations,
)


def test_upstream_label_table() -> None:
    assert label_for(Scope.STRICT, "myns", "myname") == b"myns/myname"
    assert label_for(Scope.NAMESPACE_WIDE, "myns", "myname") == b"myns"
    assert label_for(Scope.CLUSTER_WIDE, "myns", "myname") == b""


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, Scope.STRICT),
        ({NAMESPACE_WIDE_ANNOTATION: "true"}, Scope.NAMESPACE_WIDE),
        ({CLUSTER_WIDE_ANNOTATION: "true"}, Scope.CLUSTER_WIDE),
        ({CLUSTER_WIDE_ANNOTATION: "true", NAMESPACE_WIDE_ANNOTATION: "true"}, Scope.CLUSTER_WIDE),
        ({CLUSTER_WIDE_ANNOTATION: "True"}, Scope.STRICT),  # value must be exactly "true"
        (
            {CLUSTER_WIDE_ANNOTATION: "false", NAMESPACE_WIDE_ANNOTATION: "true"},
            Scope.NAMESPACE_WIDE,
        ),
    ],
)
def test_precedence(annotations, expected) -> None:
    assert scope_of({"annotations": annotations}) is expected


def test_scope_of_tolerates_missing_metadata() -> None:
    assert scope_of(None) is Scope.STRICT
    assert scope_of({"annotations": None}) is Scope.STRICT


def test_parse_scope() -> None:
    assert parse_scope("namespace-wide") is Scope.NAMESPACE_WIDE
    with pytest.raises(UsageError, match="must be one of: strict, namespace-wide, cluster-wide"):
        parse_scope("cluster")


def test_with_scope_annotations_replaces_markers() -> None:
    start = {CLUSTER_WIDE_ANNOTATION: "true", "keep": "me"}
    assert with_scope_annotations(start, Scope.NAMESPACE_WIDE) == {
        "keep": "me",
        NAMESPACE_WIDE_ANNOTATION: "true",
    }
    assert with_scope_annotations(start, Scope.STRICT) == {"keep": "me"}
    assert start == {CLUSTER_WIDE_ANNOTATION: "true", "keep": "me"}  # not mutated
