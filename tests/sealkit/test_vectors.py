"""Frozen kubeseal v0.40.0 output (tests/sealkit/vectors/) opens with sealkit, no Go needed."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import yaml

from sealkit import UnsealError
from sealkit.crypto import b64decode, unseal
from sealkit.documents import load_documents
from sealkit.model import seal_secret, unseal_sealed_secret
from sealkit.output import dump_all
from sealkit.scopes import Scope, label_for

VECTORS = Path(__file__).parent / "vectors"


def _expected_data(secret_file: str) -> dict[str, bytes]:
    secret = yaml.safe_load((VECTORS / secret_file).read_text())
    expected = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    expected.update({k: v.encode() for k, v in secret["stringData"].items()})
    return expected


@pytest.mark.parametrize(
    ("sealed_file", "secret_file", "scope"),
    [
        ("sealed-strict.json", "secret-strict.yaml", Scope.STRICT),
        ("sealed-strict.yaml", "secret-strict.yaml", Scope.STRICT),
        ("sealed-namespace-wide.json", "secret-namespace-wide.yaml", Scope.NAMESPACE_WIDE),
        ("sealed-cluster-wide.yaml", "secret-cluster-wide.yaml", Scope.CLUSTER_WIDE),
        ("sealed-scope-flag-cluster-wide.json", "secret-strict.yaml", Scope.CLUSTER_WIDE),
    ],
)
def test_kubeseal_sealed_secrets_open(private_key, sealed_file, secret_file, scope) -> None:
    (sealed,) = load_documents((VECTORS / sealed_file).read_bytes())
    secret = unseal_sealed_secret(sealed, [private_key])
    got = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert got == _expected_data(secret_file)
    assert secret["metadata"]["name"] == "mysecret"
    assert secret["metadata"]["namespace"] == "myns"
    assert secret["metadata"]["labels"] == {"app": "demo"}
    assert secret["type"] == "Opaque"
    # the label really is the scope's: the blob does not open under another scope's label
    blob = b64decode(sealed["spec"]["encryptedData"]["password"])
    wrong = Scope.STRICT if scope is not Scope.STRICT else Scope.NAMESPACE_WIDE
    with pytest.raises(UnsealError):
        unseal(blob, [private_key], label_for(wrong, "myns", "mysecret"))


@pytest.mark.parametrize(
    ("raw_file", "scope"),
    [
        ("raw-strict.txt", Scope.STRICT),
        ("raw-namespace-wide.txt", Scope.NAMESPACE_WIDE),
        ("raw-cluster-wide.txt", Scope.CLUSTER_WIDE),
    ],
)
def test_kubeseal_raw_blobs_open(private_key, raw_file, scope) -> None:
    text = (VECTORS / raw_file).read_text()
    assert not text.endswith("\n")  # --raw prints no newline
    value = unseal(b64decode(text), [private_key], label_for(scope, "myns", "mysecret"))
    assert value == (VECTORS / "raw-plaintext.txt").read_bytes()


_BLOB = re.compile(r"A[QgwI][A-Za-z0-9+/]{100,}={0,2}")


@pytest.mark.parametrize(
    ("secret_file", "sealed_file", "fmt", "scope"),
    [
        ("secret-strict.yaml", "sealed-strict.json", "json", None),
        ("secret-strict.yaml", "sealed-strict.yaml", "yaml", None),
        ("secret-namespace-wide.yaml", "sealed-namespace-wide.json", "json", None),
        ("secret-cluster-wide.yaml", "sealed-cluster-wide.yaml", "yaml", None),
        ("secret-strict.yaml", "sealed-scope-flag-cluster-wide.json", "json", Scope.CLUSTER_WIDE),
    ],
)
def test_output_matches_kubeseal_byte_for_byte_except_ciphertexts(
    public_key, secret_file, sealed_file, fmt, scope
) -> None:
    docs = load_documents((VECTORS / secret_file).read_bytes())
    ours = dump_all([seal_secret(d, public_key, scope=scope) for d in docs], fmt)
    theirs = (VECTORS / sealed_file).read_text()
    assert _BLOB.sub("<blob>", ours) == _BLOB.sub("<blob>", theirs)
