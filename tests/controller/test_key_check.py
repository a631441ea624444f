"""The key ring's cheap key check (`sealkit.keys.check_rsa_key`, issue 17).

The controller loads key Secrets without OpenSSL's full RSA validation (its primality proof
dominated start-up). These tests make sure what that validation would have caught in practice,
a corrupt or mismatched key, is still refused: with one log line, the Secret's name and never
a byte of key material.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controller.key_manager import KeyManager, KeyOptions
from controller.keyring import KeyRing, entry_from_secret
from controller.testing import FakeKubeGateway
from sealkit import InputError
from sealkit.keys import check_rsa_key, generate_key_and_cert, key_secret_manifest


@pytest.fixture(scope="module")
def good() -> tuple[Any, Any]:
    return generate_key_and_cert(2048)


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_int(v: int) -> bytes:
    raw = v.to_bytes(v.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return b"\x02" + _der_len(len(raw)) + raw


def _pem(values: list[int]) -> bytes:
    """PKCS#1 RSAPrivateKey, encoded by hand: cryptography refuses to build broken numbers."""
    body = b"".join(_der_int(v) for v in [0, *values])
    der = b"\x30" + _der_len(len(body)) + body
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join(
        ["-----BEGIN RSA PRIVATE KEY-----", *lines, "-----END RSA PRIVATE KEY-----", ""]
    ).encode()


def _corrupt(key: rsa.RSAPrivateKey, field: str) -> bytes:
    n = key.private_numbers()
    values = {
        "p": n.p,
        "q": n.q,
        "d": n.d,
        "dmp1": n.dmp1,
        "dmq1": n.dmq1,
        "iqmp": n.iqmp,
    }
    values[field] += 2  # keep it odd where it was odd: only the consistency is broken
    pub = n.public_numbers
    order = ("d", "p", "q", "dmp1", "dmq1", "iqmp")
    return _pem([pub.n, pub.e, *(values[k] for k in order)])


def _secret(name: str, key_pem: bytes, cert: Any) -> dict[str, Any]:
    manifest = key_secret_manifest(
        serialization.load_pem_private_key(key_pem, None, unsafe_skip_rsa_key_validation=True),
        cert,
        namespace="kube-system",
        name=name,
    )
    manifest["data"]["tls.key"] = base64.b64encode(key_pem).decode()
    return manifest


def test_good_key_loads_quickly_checked(good: tuple[Any, Any]) -> None:
    key, cert = good
    check_rsa_key(key)  # no exception
    entry = entry_from_secret(key_secret_manifest(key, cert, namespace="ks", name="k"))
    assert entry.fingerprint and entry.private_key.key_size == 2048


@pytest.mark.parametrize("field", ["p", "q", "d", "dmp1", "dmq1", "iqmp"])
def test_corrupt_key_is_refused(good: tuple[Any, Any], field: str) -> None:
    key, cert = good
    pem = _corrupt(key, field)
    with pytest.raises(ValueError) as err:
        entry_from_secret(_secret("sealed-secrets-keybad", pem, cert))
    message = str(err.value)
    assert "\n" not in message and "sealed-secrets-keybad" in message
    # OpenSSL's full validation refuses the same key: the cheap check agrees with it
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, None)


def test_inconsistent_numbers_raise_input_error(good: tuple[Any, Any]) -> None:
    key, _ = good
    broken = serialization.load_pem_private_key(
        _corrupt(key, "d"), None, unsafe_skip_rsa_key_validation=True
    )
    assert isinstance(broken, rsa.RSAPrivateKey)
    with pytest.raises(InputError, match="corrupt"):
        check_rsa_key(broken)


def test_mismatched_certificate_is_refused(good: tuple[Any, Any]) -> None:
    key, _ = good
    _, other_cert = generate_key_and_cert(2048)
    with pytest.raises(ValueError, match="does not match"):
        entry_from_secret(key_secret_manifest(key, other_cert, namespace="ks", name="k"))


def test_refused_key_logs_one_line_without_key_material(
    good: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    key, cert = good
    pem = _corrupt(key, "iqmp")
    secret = _secret("sealed-secrets-keyxyz", pem, cert)
    manager = KeyManager(FakeKubeGateway(), KeyRing(), KeyOptions(namespace="kube-system"))
    with caplog.at_level(logging.DEBUG):
        assert manager._entry(secret) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "sealed-secrets-keyxyz" in lines[0]
    body = b"".join(pem.splitlines()[1:-1]).decode()
    for chunk in (body[i : i + 16] for i in range(0, len(body), 16)):
        assert chunk not in lines[0]
    assert secret["data"]["tls.key"][:24] not in lines[0]
    for number in (key.private_numbers().p, key.private_numbers().d):
        assert str(number)[:20] not in lines[0] and f"{number:x}"[:20] not in lines[0]
