"""Hypothesis properties of the seal/unseal pair."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealkit import UnsealError
from sealkit.crypto import seal, unseal
from sealkit.scopes import Scope, label_for

names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
_settings = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(value=st.binary(max_size=512), scope=st.sampled_from(list(Scope)), ns=names, name=names)
def test_round_trip_every_scope(public_key, private_key, value, scope, ns, name) -> None:
    label = label_for(scope, ns, name)
    assert unseal(seal(value, public_key, label), [private_key], label) == value


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.binary(min_size=0, max_size=8), flip=st.integers(min_value=1, max_value=255))
def test_every_single_byte_mutation_is_rejected(public_key, private_key, value, flip) -> None:
    blob = seal(value, public_key, b"ns/name")
    for position in range(len(blob)):
        mutated = bytearray(blob)
        mutated[position] ^= flip
        try:
            unseal(bytes(mutated), [private_key], b"ns/name")
        except UnsealError:
            continue
        raise AssertionError(f"mutation at byte {position} was accepted")


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.binary(min_size=0, max_size=8))
def test_every_truncation_is_rejected(public_key, private_key, value) -> None:
    blob = seal(value, public_key, b"")
    for length in range(len(blob)):
        try:
            unseal(blob[:length], [private_key], b"")
        except UnsealError:
            continue
        raise AssertionError(f"truncation to {length} bytes was accepted")


@_settings
@given(ns=names, name=names, other_ns=names, other_name=names)
def test_strict_scope_binds_name_and_namespace(
    public_key, private_key, ns, name, other_ns, other_name
) -> None:
    blob = seal(b"v", public_key, label_for(Scope.STRICT, ns, name))
    for wrong_ns, wrong_name in ((other_ns, name), (ns, other_name)):
        if (wrong_ns, wrong_name) == (ns, name):
            continue
        try:
            unseal(blob, [private_key], label_for(Scope.STRICT, wrong_ns, wrong_name))
        except UnsealError:
            continue
        raise AssertionError("strict blob opened under another name/namespace")


@_settings
@given(ns=names, name=names, other_name=names)
def test_namespace_wide_ignores_name_not_namespace(public_key, private_key, ns, name, other_name):
    blob = seal(b"v", public_key, label_for(Scope.NAMESPACE_WIDE, ns, name))
    assert unseal(blob, [private_key], label_for(Scope.NAMESPACE_WIDE, ns, other_name)) == b"v"
    try:
        unseal(blob, [private_key], label_for(Scope.NAMESPACE_WIDE, ns + "x", name))
    except UnsealError:
        return
    raise AssertionError("namespace-wide blob opened in another namespace")
