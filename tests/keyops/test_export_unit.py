"""`keys export` / `keys import --activate` (pure): the output is a standard SealedSecret per
key, sealed for the other cluster, that unseals to a *pending* Secret the controller's
key-injection guard allows and no controller loads; activation accepts only a well-formed key
pair, and strips whatever would let a SealedSecret or the garbage collector touch the key. No
key material in clear, and refusals never hold any."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from controller.keyring import is_key_secret
from controller.write_guard import WritePolicy, check_secret_write
from sealkit._exceptions import InputError
from sealkit.keyops._export import (
    SKIP_OWNER,
    export_fingerprint,
    export_keys,
    is_key_export,
    is_old_export,
)
from sealkit.keyops._import import (
    FINGERPRINT_ANNOTATION,
    PENDING_LABEL,
    activated,
    check_pending,
)
from sealkit.keys import (
    fingerprint,
    generate_key_and_cert,
    key_secret_manifest,
    load_private_keys,
    private_key_pem,
)
from sealkit.model import unseal_sealed_secret
from sealkit.output import dump_all

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
POLICY = WritePolicy(controller_namespace="kb", key_prefix="sealed-secrets-key")


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any, Any, dict[str, Any]]:
    key, cert = generate_key_and_cert(2048)
    other, _ = generate_key_and_cert(2048)
    src = key_secret_manifest(key, cert, namespace="ka", name="sealed-secrets-keyabcde")
    return key, other, cert, src


def _pending(pair: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    key, other, _, src = pair
    doc = export_keys([src], other.public_key(), namespace="kb", source="ka")[0]
    secret = unseal_sealed_secret(doc, [other])
    secret["metadata"]["namespace"] = "kb"
    return doc, secret


def test_export_unseals_to_a_pending_secret_the_guard_allows(pair: Any) -> None:
    key, other, _, src = pair
    docs = export_keys([src], other.public_key(), namespace="kb", source="ka")
    assert len(docs) == 1 and is_key_export(docs[0]) and not is_old_export(docs[0])
    fp = fingerprint(key.public_key())
    assert docs[0]["metadata"]["name"] == "key-import-sealed-secrets-keyabcde"
    assert export_fingerprint(docs[0]) == fp
    text = dump_all(docs, "yaml")
    assert "PRIVATE KEY" not in text and src["data"]["tls.key"][:60] not in text
    secret = unseal_sealed_secret(docs[0], [other])
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"] == {PENDING_LABEL: "pending"}
    annotations = secret["metadata"]["annotations"]
    assert annotations[SKIP_OWNER] == "true" and annotations[FINGERPRINT_ANNOTATION] == fp
    assert "sealedsecrets.bitnami.com/managed" not in annotations
    assert "ownerReferences" not in secret["metadata"]
    assert secret["data"] == src["data"]
    got = load_private_keys(base64.b64decode(secret["data"]["tls.key"]))[0]
    assert got.private_numbers() == key.private_numbers()
    # the guard lets the controller write it, and no controller loads it as a key
    check_secret_write(secret, POLICY)
    assert not is_key_secret(secret)
    assert not is_key_export({**docs[0], "spec": {"encryptedData": {"x": "y"}}})


def test_a_template_with_the_active_key_label_is_still_refused(pair: Any) -> None:
    _, secret = _pending(pair)
    forged = copy.deepcopy(secret)
    forged["metadata"]["labels"] = {KEY_LABEL: "active"}
    with pytest.raises(Exception, match="refusing to write a sealing-key Secret"):
        check_secret_write(forged, POLICY)
    forged["metadata"]["labels"] = {PENDING_LABEL: "pending", KEY_LABEL: "pending"}
    with pytest.raises(Exception, match="refusing to write a sealing-key Secret"):
        check_secret_write(forged, POLICY)


def test_activation_checks_and_relabels(pair: Any) -> None:
    key, _, _, src = pair
    _, secret = _pending(pair)
    secret["metadata"]["ownerReferences"] = [{"kind": "SealedSecret", "controller": True}]
    secret["metadata"]["annotations"]["sealedsecrets.bitnami.com/managed"] = "true"
    assert check_pending(secret, namespace="kb") == fingerprint(key.public_key())
    out = activated(secret)
    assert out["metadata"]["labels"] == {KEY_LABEL: "active"}
    assert "ownerReferences" not in out["metadata"]
    annotations = out["metadata"]["annotations"]
    assert "sealedsecrets.bitnami.com/managed" not in annotations and SKIP_OWNER not in annotations
    assert out["data"] == src["data"] and is_key_secret(out)


def _refusal(secret: dict[str, Any], namespace: str = "kb") -> str:
    with pytest.raises(InputError) as info:
        check_pending(secret, namespace=namespace)
    return info.value.message


def test_activation_refuses_malformed_pending_secrets_in_one_line(pair: Any) -> None:
    key, other, cert, src = pair
    _, good = _pending(pair)
    cases: dict[str, tuple[dict[str, Any], str]] = {}
    s = copy.deepcopy(good)
    cases["namespace"] = (s, "not in the controller namespace")
    s = copy.deepcopy(good)
    s["data"]["tls.key"] = base64.b64encode(private_key_pem(other)).decode()
    cases["mismatch"] = (s, "tls.crt does not match tls.key")
    s = copy.deepcopy(good)
    s["data"]["tls.key"] = base64.b64encode(b"vault:v1:abcdef").decode()
    cases["not pem"] = (s, "cannot load PEM private key")
    s = copy.deepcopy(good)
    s["data"]["extra"] = "eA=="
    cases["extra data"] = (s, "exactly tls.crt and tls.key")
    s = copy.deepcopy(good)
    s["type"] = "Opaque"
    cases["type"] = (s, "not of type kubernetes.io/tls")
    s = copy.deepcopy(good)
    s["metadata"]["labels"] = {}
    cases["label"] = (s, "is not labelled")
    small, small_cert = generate_key_and_cert(1024)
    s = copy.deepcopy(good)
    s["data"] = key_secret_manifest(small, small_cert, namespace="kb", name="x")["data"]
    cases["small"] = (s, "1024 bits")
    secret_key = src["data"]["tls.key"]
    for name, (secret, expected) in cases.items():
        msg = _refusal(secret, "other" if name == "namespace" else "kb")
        assert msg.startswith("refused: ") and expected in msg, (name, msg)
        assert "\n" not in msg and "PRIVATE" not in msg and secret_key[30:90] not in msg
