"""Certificates (kubeseal's checks) and private keys (load, generate, key Secret format)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from sealkit import CertError, InputError
from sealkit.certs import load_certificate, load_public_key
from sealkit.keys import (
    fingerprint,
    generate_key_and_cert,
    key_secret_manifest,
    load_private_keys,
    private_key_pem,
)

VECTORS = Path(__file__).parent / "vectors"
UTC = dt.UTC


def _cert(key, not_after: dt.datetime, cn: str = "t") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(not_after - dt.timedelta(days=30))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_first_certificate_is_used(private_key, other_private_key) -> None:
    later = dt.datetime(2100, 1, 1, tzinfo=UTC)
    pem = b"junk before\n" + _cert(other_private_key, later) + _cert(private_key, later)
    assert load_public_key(pem).public_numbers() == other_private_key.public_key().public_numbers()


def test_expired_certificate_refused_with_kubeseal_message(private_key) -> None:
    pem = _cert(private_key, dt.datetime(2020, 1, 31, 12, 0, tzinfo=UTC))
    with pytest.raises(CertError) as info:
        load_certificate(pem)
    assert str(info.value) == "failed to encrypt using an expired certificate on January 31, 2020"
    # the injectable clock: the same certificate is fine the day before it expires
    assert load_certificate(pem, now=dt.datetime(2020, 1, 30, tzinfo=UTC))
    with pytest.raises(CertError):
        load_certificate(pem, now=dt.datetime(2020, 1, 31, 12, 0, 1))  # naive = UTC


def test_non_rsa_certificate_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertError, match="expected RSA public key but found EC"):
        load_certificate(_cert(key, dt.datetime(2100, 1, 1, tzinfo=UTC)))


@pytest.mark.parametrize(
    "data", [b"", b"not a cert", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_garbage_refused(data) -> None:
    with pytest.raises(CertError, match="does not contain any valid RSA or ECDSA certificates"):
        load_certificate(data)


def test_committed_test_cert_loads() -> None:
    assert load_public_key((VECTORS / "test-cert.pem").read_bytes()).key_size == 2048


# --- private keys ----------------------------------------------------------------------------
def _numbers(keys):
    return [k.private_numbers() for k in keys]


def test_load_pem_pkcs1_and_pkcs8(private_key, other_private_key) -> None:
    pkcs8 = other_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keys = load_private_keys(private_key_pem(private_key) + b"\n" + pkcs8)
    assert _numbers(keys) == _numbers([private_key, other_private_key])


def test_load_key_secret_yaml_json_and_list(private_key, other_private_key) -> None:
    cert = x509.load_pem_x509_certificate((VECTORS / "test-cert.pem").read_bytes())
    one = key_secret_manifest(private_key, cert)
    two = key_secret_manifest(other_private_key, cert)
    assert _numbers(load_private_keys(yaml.safe_dump(one).encode())) == _numbers([private_key])
    assert _numbers(load_private_keys(json.dumps(one).encode())) == _numbers([private_key])
    listing = {"apiVersion": "v1", "kind": "List", "items": [one, two]}
    assert _numbers(load_private_keys(yaml.safe_dump(listing).encode())) == _numbers(
        [private_key, other_private_key]
    )
    multi = (yaml.safe_dump(one) + "---\n" + yaml.safe_dump(two)).encode()
    assert len(load_private_keys(multi)) == 2


def test_non_rsa_private_key_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InputError, match="expected RSA private key"):
        load_private_keys(pem)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "cannot load PEM private key",
        ),
        (b"-----BEGIN NOTHING-----\n", "no PEM private key found"),
        (b"{ not: [valid", "cannot parse private key file"),
        (b"apiVersion: v1\nkind: Secret\nmetadata: {name: k}\ndata: {}\n", "has no data.tls.key"),
        (b"kind: ConfigMap\n", "no key Secret found"),
        (b"- a list\n", "neither PEM nor a key Secret"),
    ],
)
def test_bad_key_files(data, message) -> None:
    with pytest.raises(InputError, match=message):
        load_private_keys(data)


def test_generated_key_and_cert_match_upstream_controller() -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    key, cert = generate_key_and_cert(2048, cn="my-cn", ttl=dt.timedelta(hours=10), now=now)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.not_valid_before_utc == now
    assert cert.not_valid_after_utc == now + dt.timedelta(hours=10)
    assert 0 < cert.serial_number < 2**128
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    assert cn == ["my-cn"] and cert.issuer == cert.subject
    assert cert.signature_hash_algorithm.name == "sha256"
    # KeyUsage = EncipherOnly alone (Go's encoding; cryptography's KeyUsage cannot express it)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert bytes.fromhex("0603551d0f0101ff040403020001") in der  # critical, bit 7 only
    assert bytes.fromhex("0603551d130101ff040530030101ff") in der  # critical, CA=true
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert ski.digest in der
    # the cert is usable for sealing right now
    assert load_public_key(cert.public_bytes(serialization.Encoding.PEM), now=now)


def test_generated_cert_extensions_with_openssl_view(tmp_path) -> None:
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    _, cert = generate_key_and_cert(2048)
    path = tmp_path / "c.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    text = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "X509v3 Key Usage: critical\n                Encipher Only" in text
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE" in text
    assert "Subject: \n" in text or "Subject:\n" in text or "Subject: " in text


def test_key_secret_manifest_format(private_key) -> None:
    cert = x509.load_pem_x509_certificate((VECTORS / "test-cert.pem").read_bytes())
    m = key_secret_manifest(
        private_key,
        cert,
        labels={"team": "a", "sealedsecrets.bitnami.com/sealed-secrets-key": "compromised"},
        annotations={"note": "byok"},
    )
    assert list(m) == ["apiVersion", "kind", "metadata", "data", "type"]
    assert m["type"] == "kubernetes.io/tls"
    assert m["metadata"] == {
        "generateName": "sealed-secrets-key",
        "namespace": "kube-system",
        "labels": {"team": "a", "sealedsecrets.bitnami.com/sealed-secrets-key": "active"},
        "annotations": {"note": "byok"},
    }
    assert base64.b64decode(m["data"]["tls.key"]).startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert base64.b64decode(m["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
    named = key_secret_manifest(private_key, cert, name="sealed-secrets-keyab12c", namespace="ss")
    assert named["metadata"]["name"] == "sealed-secrets-keyab12c"
    assert "generateName" not in named["metadata"]


def test_fingerprint_is_openssh_sha256(private_key) -> None:
    fp = fingerprint(private_key.public_key())
    assert fp.startswith("SHA256:") and "=" not in fp and len(fp) == 7 + 43


def test_fast_der_path_agrees_with_full_parser(private_key, other_private_key) -> None:
    """`load_public_key` reads the DER itself; it must agree with cryptography.x509."""
    from sealkit.certs import _tbs_fields

    for not_after in (
        dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # UTCTime
        dt.datetime(2050, 1, 1, tzinfo=UTC),  # GeneralizedTime
        dt.datetime(2100, 6, 7, 8, 9, 10, tzinfo=UTC),
    ):
        pem = _cert(private_key, not_after)
        fields = _tbs_fields(pem)
        assert fields is not None
        assert dt.datetime(*fields[0], tzinfo=UTC) == not_after
        assert not_after == load_certificate(pem).not_valid_after_utc
        assert load_public_key(pem).public_numbers() == private_key.public_key().public_numbers()
    for path in ("test-cert.pem",):
        pem = (VECTORS / path).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        assert dt.datetime(*_tbs_fields(pem)[0], tzinfo=UTC) == cert.not_valid_after_utc


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_epoch_seconds_are_datetimes(when: dt.datetime) -> None:
    """The expiry check without ``datetime`` counts seconds as datetime does."""
    from sealkit.certs import _asn1_time, _epoch

    when = when.replace(microsecond=0, tzinfo=UTC)
    fields = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    assert _epoch(fields) == int(when.timestamp())
    text = when.strftime("%Y%m%d%H%M%S").rjust(14, "0") + "Z"
    assert _asn1_time(0x18, text.encode()) == fields


@pytest.mark.parametrize(
    "text",
    [
        "20230230000000Z",
        "20231301000000Z",
        "20230101240000Z",
        "00000101000000Z",
        "20230101006000Z",
        "20230101000060Z",
    ],
)
def test_impossible_times_are_left_to_the_full_parser(text: str) -> None:
    from sealkit.certs import _asn1_time

    with pytest.raises(ValueError):
        _asn1_time(0x18, text.encode())


def test_fast_path_refuses_what_the_full_parser_refuses(private_key) -> None:
    pem = _cert(private_key, dt.datetime(2100, 1, 1, tzinfo=UTC))
    lines = pem.splitlines()
    body = base64.b64decode(b"".join(lines[1:-1]))
    for cut in (10, len(body) // 2, len(body) - 5):
        broken = base64.encodebytes(body[:cut])
        bad = lines[0] + b"\n" + broken + lines[-1] + b"\n"
        with pytest.raises(CertError):
            load_public_key(bad)
    expired = _cert(private_key, dt.datetime(2001, 2, 3, tzinfo=UTC))
    with pytest.raises(CertError, match="expired certificate on February 3, 2001"):
        load_public_key(expired)
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertError, match="expected RSA public key but found EC key"):
        load_public_key(_cert(key, dt.datetime(2100, 1, 1, tzinfo=UTC)))
