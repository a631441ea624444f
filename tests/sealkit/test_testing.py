"""sealkit.testing: the shipped test key and the in-memory controller."""

from __future__ import annotations

import pytest

from sealkit import UnsealError, seal_secret, unseal_sealed_secret
from sealkit.keys import generate_key_and_cert
from sealkit.testing import (
    FakeController,
    sample_secret,
    test_certificate_pem,
    test_private_key,
)


def test_shipped_key_matches_the_vectors_key(private_key) -> None:
    assert test_private_key().private_numbers() == private_key.private_numbers()
    from sealkit.certs import load_public_key

    assert load_public_key(test_certificate_pem()).public_numbers() == (
        private_key.public_key().public_numbers()
    )


def test_fake_controller_verify_and_rotate() -> None:
    from cryptography.hazmat.primitives import serialization

    old = FakeController()
    sealed = seal_secret(sample_secret(password="x"), old.public_key())
    new_key, new_cert = generate_key_and_cert(2048)
    controller = FakeController(
        [
            (test_private_key(), test_certificate_pem()),
            (new_key, new_cert.public_bytes(serialization.Encoding.PEM)),
        ]
    )
    controller.verify(sealed)
    rotated = controller.rotate(sealed)
    assert unseal_sealed_secret(rotated, [new_key])["data"] == {"password": "eA=="}
    sealed["metadata"]["name"] = "moved"
    with pytest.raises(UnsealError, match="unable to decrypt sealed secret: moved"):
        controller.verify(sealed)
