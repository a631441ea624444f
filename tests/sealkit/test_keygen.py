"""`sealkit keygen`: the controller's key-Secret format, safe file writing, kubeseal interop."""

from __future__ import annotations

import base64
import datetime as dt
import stat
from pathlib import Path

import pytest
import yaml

from sealkit._exceptions import UsageError
from sealkit.keygen import generate, parse_duration
from tests.sealkit.beyond_support import (
    assert_one_line_error,
    kubeseal_binary,
    kubeseal_recovery_unseal,
    kubeseal_seal,
    run_cli,
)

KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("87600h", 87600 * 3600), ("720h0m0s", 720 * 3600), ("1h30m", 5400), ("30d", 30 * 86400)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "h", "0h", "1h 2m", "-1h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_generated_key_secret_matches_controller_format() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    material = generate(bits=2048, cn="my-cn", ttl=dt.timedelta(hours=10), now=now)
    doc = yaml.safe_load(material.key_secret_yaml)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Secret"
    assert doc["type"] == "kubernetes.io/tls"
    assert doc["metadata"]["generateName"] == "sealed-secrets-key"
    assert "name" not in doc["metadata"]
    assert doc["metadata"]["namespace"] == "kube-system"
    assert doc["metadata"]["labels"] == {KEY_LABEL: "active"}
    key_pem = base64.b64decode(doc["data"]["tls.key"])
    assert key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")  # PKCS#1
    cert_pem = base64.b64decode(doc["data"]["tls.crt"])
    assert cert_pem == material.cert_pem
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert key.key_size == 2048
    assert cert.subject.rfc4514_string() == "CN=my-cn" == cert.issuer.rfc4514_string()
    assert cert.not_valid_before_utc == now
    assert cert.not_valid_after_utc == now + dt.timedelta(hours=10)
    # KeyUsage = EncipherOnly only, critical (cryptography cannot parse that combination,
    # so check the DER): OID 2.5.29.15, critical TRUE, OCTET STRING { BIT STRING 00 01 }
    tbs = cert.tbs_certificate_bytes
    assert b"\x06\x03\x55\x1d\x0f\x01\x01\xff\x04\x04\x03\x02\x00\x01" in tbs
    # BasicConstraints CA=true: OID 2.5.29.19 ... SEQUENCE { BOOLEAN TRUE }
    assert b"\x06\x03\x55\x1d\x13" in tbs and b"\x30\x03\x01\x01\xff" in tbs
    assert material.fingerprint.startswith("SHA256:")


def test_fixed_name_and_namespace() -> None:
    doc = yaml.safe_load(generate(bits=2048, name="my-key", namespace="sealed").key_secret_yaml)
    assert doc["metadata"]["name"] == "my-key"
    assert "generateName" not in doc["metadata"]
    assert doc["metadata"]["namespace"] == "sealed"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bits": 1024},
        {"bits": 2049},
        {"namespace": "Bad_NS"},
        {"name": "UPPER"},
        {"generate_name": "x/y"},
    ],
)
def test_bad_options_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        generate(**{"bits": 2048, **kwargs})


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_both_files_key_0600(tmp_path: Path) -> None:
    result = run_cli(["keygen", "--key-size", "2048", "-o", str(tmp_path)])
    assert result.code == 0, result.err
    key_file = tmp_path / "sealed-secrets-key.yaml"
    cert_file = tmp_path / "sealed-secrets-key.crt"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert cert_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    key_text = yaml.safe_load(key_file.read_text())["data"]["tls.key"]
    assert key_text not in result.out + result.err
    assert "fingerprint: SHA256:" in result.out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left

    # the key opens what the certificate seals (sealkit's own core, both ways)
    from sealkit.certs import load_public_key
    from sealkit.keys import load_private_keys
    from sealkit.model import seal_secret, unseal_sealed_secret

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "ns1"},
        "stringData": {"k": "v"},
    }
    sealed = seal_secret(secret, load_public_key(cert_file.read_bytes()))
    opened = unseal_sealed_secret(sealed, load_private_keys(key_file.read_bytes()))
    assert opened["data"] == {"k": base64.b64encode(b"v").decode()}


def test_cli_refuses_to_overwrite_then_force(tmp_path: Path) -> None:
    key_file, cert_file = tmp_path / "k.yaml", tmp_path / "c.pem"
    cert_file.write_text("keep me")
    args = [
        "keygen",
        "--key-size",
        "2048",
        "--key-secret-file",
        str(key_file),
        "--cert-file",
        str(cert_file),
    ]
    result = run_cli(args)
    assert result.code == 1
    assert_one_line_error(result)
    assert "already exists" in result.err
    assert not key_file.exists() and cert_file.read_text() == "keep me"

    result = run_cli([*args, "--force", "--name", "fixed", "--namespace", "sealed"])
    assert result.code == 0, result.err
    assert cert_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    meta = yaml.safe_load(key_file.read_text())["metadata"]
    assert (meta["name"], meta["namespace"]) == ("fixed", "sealed")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_cli_force_keeps_key_private_when_overwriting_world_readable(tmp_path: Path) -> None:
    key_file = tmp_path / "k.yaml"
    key_file.write_text("old")
    key_file.chmod(0o644)
    result = run_cli(
        [
            "keygen",
            "--key-size",
            "2048",
            "--key-secret-file",
            str(key_file),
            "--cert-file",
            str(tmp_path / "c.pem"),
            "--force",
        ]
    )
    assert result.code == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--ttl", "forever"], 2),
        (["--key-size", "512"], 2),
        (["--namespace", "Not Valid"], 2),
        (["--key-size", "x"], 2),
        (["-o", "/nonexistent/dir"], 1),
    ],
)
def test_cli_errors(tmp_path: Path, args: list[str], code: int) -> None:
    result = run_cli(
        [
            "keygen",
            "--key-secret-file",
            str(tmp_path / "k.yaml"),
            "--cert-file",
            str(tmp_path / "c.pem"),
            *args,
        ]
        if "-o" not in args
        else ["keygen", *args]
    )
    assert result.code == code
    assert "Traceback" not in result.err
    assert not (tmp_path / "k.yaml").exists()


@pytest.mark.stack
def test_real_kubeseal_recovery_unseal_opens_with_generated_key(tmp_path: Path) -> None:
    """kubeseal --cert <our cert> seals; kubeseal --recovery-private-key <our manifest> opens."""
    kubeseal = kubeseal_binary()
    result = run_cli(["keygen", "--key-size", "2048", "-o", str(tmp_path)])
    assert result.code == 0
    key_file = tmp_path / "sealed-secrets-key.yaml"
    cert_file = tmp_path / "sealed-secrets-key.crt"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "stringData": {"password": "kubeseal-sealed-value"},
    }
    sealed = kubeseal_seal(kubeseal, cert_file, secret, tmp_path)
    sealed_file = tmp_path / "sealed.json"
    sealed_file.write_text(__import__("json").dumps(sealed))
    opened = kubeseal_recovery_unseal(kubeseal, sealed_file, key_file)
    assert base64.b64decode(opened["data"]["password"]) == b"kubeseal-sealed-value"
