"""Pure rules of `controller.write_guard`, `controller.api_errors` and the limiter's charge."""

from __future__ import annotations

import base64

import pytest

from controller.api_errors import safe_write_error
from controller.kube_gateway import ApiError
from controller.ratelimit import GcraLimiter
from controller.reconcile import ReconcileError
from controller.write_guard import WritePolicy, check_secret_write, key_secret_reason

POLICY = WritePolicy("kube-system", "sealed-secrets-key")


def _secret(
    name: str = "db",
    ns: str = "shop",
    labels: dict | None = None,
    data: dict | None = None,
    type_: str = "Opaque",
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": type_,
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "data": data or {"a": base64.b64encode(b"x").decode()},
    }


def test_key_secret_rules() -> None:
    assert key_secret_reason(_secret(), POLICY) is None
    label = "sealedsecrets.bitnami.com/sealed-secrets-key"
    for labels in ({label: "active"}, {label: "compromised"}, {label: ""}):
        assert key_secret_reason(_secret(labels=labels), POLICY) is not None
    assert (
        key_secret_reason(_secret(type_="kubernetes.io/tls", labels={label: "x"}), POLICY)
        is not None
    )
    assert (
        key_secret_reason(_secret(name="sealed-secrets-keyabc", ns="kube-system"), POLICY)
        is not None
    )
    # The prefix only matters in the controller's namespace.
    assert key_secret_reason(_secret(name="sealed-secrets-keyabc", ns="shop"), POLICY) is None
    with pytest.raises(ReconcileError) as info:
        check_secret_write(_secret(labels={label: "active"}), POLICY)
    assert info.value.retry is False and info.value.metric_reason == "update"


def test_size_is_checked_decoded_and_encoded() -> None:
    ok = {"a": base64.b64encode(b"x" * (1 << 20)).decode()}
    check_secret_write(_secret(data=ok), POLICY)  # exactly the limit
    over = {"a": ok["a"], "b": base64.b64encode(b"y").decode()}
    with pytest.raises(ReconcileError, match="rendered Secret data is 1048577 bytes") as info:
        check_secret_write(_secret(data=over), POLICY)
    assert info.value.retry is False and info.value.metric_reason == "update"


def test_write_errors_keep_reason_and_field_paths_only() -> None:
    echo = ApiError(
        'PUT /api/v1/...: 422 Secret "x" is invalid: data[.dockerconfigjson]: '
        "Invalid value: \"<secret contents redacted>\": invalid character 'H'",
        422,
        "Invalid",
        (
            (
                "data[.dockerconfigjson]",
                "FieldValueInvalid",
                "invalid character 'H' looking for beginning of value",
            ),
        ),
    )
    text = safe_write_error(echo)
    assert text == "cannot write Secret: 422 Invalid (data[.dockerconfigjson]: FieldValueInvalid)"
    immutable = ApiError(
        "x",
        422,
        "Invalid",
        (("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"),),
    )
    assert safe_write_error(immutable) == (
        "cannot write Secret: 422 Invalid (data: "
        "FieldValueForbidden, field is immutable when "
        "`immutable` is set)"
    )
    assert (
        safe_write_error(ApiError("POST x: ConnectionError", 0))
        == "cannot write Secret: no answer from the apiserver"
    )
    assert (
        safe_write_error(ApiError("secret echo here", 413, "RequestEntityTooLarge"))
        == "cannot write Secret: 413 RequestEntityTooLarge"
    )


def test_charge_puts_a_client_in_debt() -> None:
    now = [0.0]
    limiter = GcraLimiter(2, 2, clock=lambda: now[0])
    assert limiter.allow("c").allowed
    limiter.charge("c", 9)  # 10 requests in all: 5 s at 2/s, less the 1.5 s tolerance
    assert not limiter.allow("c").allowed
    now[0] = 3.9
    assert not limiter.allow("c").allowed
    now[0] = 4.0
    assert limiter.allow("c").allowed
    limiter.charge("c", 0)
    limiter.charge("c", -3)  # never a credit
    assert not limiter.allow("c").allowed
