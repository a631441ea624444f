"""`keys export` (pure): the output is a standard SealedSecret per key, sealed for the other
cluster, that unseals to a Bitnami-format key Secret surviving its SealedSecret; no key
material in clear."""

from __future__ import annotations

import base64

from sealkit.keyops._export import SKIP_OWNER, export_keys, is_key_export
from sealkit.keys import generate_key_and_cert, key_secret_manifest, load_private_keys
from sealkit.model import unseal_sealed_secret
from sealkit.output import dump_all


def test_export_round_trip() -> None:
    key, cert = generate_key_and_cert(2048)
    other, _ = generate_key_and_cert(2048)
    src = key_secret_manifest(key, cert, namespace="ka", name="sealed-secrets-keyabcde")
    docs = export_keys([src], other.public_key(), namespace="kb", source="ka")
    assert len(docs) == 1 and is_key_export(docs[0])
    assert docs[0]["metadata"] == {"name": "sealed-secrets-keyabcde", "namespace": "kb"}
    text = dump_all(docs, "yaml")
    assert "PRIVATE KEY" not in text and src["data"]["tls.key"][:60] not in text
    secret = unseal_sealed_secret(docs[0], [other])
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["labels"] == {
        "sealedsecrets.bitnami.com/sealed-secrets-key": "active"
    }
    assert secret["metadata"]["annotations"][SKIP_OWNER] == "true"
    assert "ownerReferences" not in secret["metadata"]
    assert secret["data"] == src["data"]
    got = load_private_keys(base64.b64decode(secret["data"]["tls.key"]))[0]
    assert got.private_numbers() == key.private_numbers()
    assert not is_key_export({**docs[0], "spec": {"encryptedData": {"x": "y"}}})
