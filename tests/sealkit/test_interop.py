"""Interoperability with the real Bitnami kubeseal binary, both directions, every scope, --raw.

Needs only the kubeseal binary (the `kubeseal_path` stack fixture), no cluster: both tools
seal offline with ``--cert`` and open offline with ``--recovery-unseal``.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.sealkit.conftest import run_sealkit

pytestmark = pytest.mark.stack

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {
        "name": "app",
        "namespace": "team-a",
        "labels": {"tier": "db"},
        "annotations": {"owner": "me"},
    },
    "type": "Opaque",
    "data": {"password": base64.b64encode(b"p@ss\x00word\xff").decode(), "empty": ""},
    "stringData": {"user": "ädmin", "dsn": "postgres://u:p@h/db?x=<&>"},
}
EXPECTED = {
    "password": b"p@ss\x00word\xff",
    "empty": b"",
    "user": "ädmin".encode(),
    "dsn": b"postgres://u:p@h/db?x=<&>",
}
SCOPES = ["strict", "namespace-wide", "cluster-wide"]


def kubeseal(path: str, *args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([path, *args], input=input, capture_output=True, timeout=60)


def _data(secret_text: str) -> dict[str, bytes]:
    # kubeseal prints an empty decrypted value as null (Go's nil []byte); we print "".
    doc = yaml.safe_load(secret_text)
    return {k: base64.b64decode(v or "") for k, v in (doc.get("data") or {}).items()}


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_kubeseal_output_opens_with_sealkit(kubeseal_path, cert_path, key_path, scope, fmt):
    sealed = kubeseal(
        kubeseal_path,
        "--cert",
        cert_path,
        "--scope",
        scope,
        "-o",
        fmt,
        input=json.dumps(SECRET).encode(),
    )
    assert sealed.returncode == 0, sealed.stderr
    opened = run_sealkit(
        "--recovery-unseal", "--recovery-private-key", key_path, input=sealed.stdout
    )
    assert opened.returncode == 0, opened.stderr
    assert _data(opened.stdout) == EXPECTED


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_sealkit_output_opens_with_kubeseal(kubeseal_path, cert_path, key_path, scope, fmt):
    sealed = run_sealkit("--cert", cert_path, "--scope", scope, "-o", fmt, input=json.dumps(SECRET))
    assert sealed.returncode == 0, sealed.stderr
    opened = kubeseal(
        kubeseal_path,
        "--recovery-unseal",
        "--recovery-private-key",
        key_path,
        input=sealed.stdout.encode(),
    )
    assert opened.returncode == 0, opened.stderr
    assert _data(opened.stdout.decode()) == EXPECTED


def test_same_recovery_output_from_both(kubeseal_path, cert_path, key_path) -> None:
    """Recovery-unseal of one SealedSecret prints the same Secret from both tools."""
    sealed = run_sealkit("--cert", cert_path, input=json.dumps(SECRET)).stdout.encode()
    ours = run_sealkit("--recovery-unseal", "--recovery-private-key", key_path, input=sealed)
    theirs = kubeseal(
        kubeseal_path, "--recovery-unseal", "--recovery-private-key", key_path, input=sealed
    )
    assert ours.stdout == theirs.stdout.decode().replace('"empty": null', '"empty": ""')


def _raw_args(scope: str) -> list[str]:
    return {
        "strict": ["--scope", "strict", "--name", "app", "-n", "team-a"],
        "namespace-wide": ["--scope", "namespace-wide", "-n", "team-a"],
        "cluster-wide": ["--scope", "cluster-wide"],
    }[scope]


def _wrap_raw(blob: str, scope: str) -> dict:
    """A SealedSecret around one --raw blob (the user adds the annotation by hand, #315)."""
    meta: dict = {"name": "app", "namespace": "team-a"}
    if scope != "strict":
        meta["annotations"] = {f"sealedsecrets.bitnami.com/{scope}": "true"}
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": meta,
        "spec": {
            "template": {"metadata": {"name": "app", "namespace": "team-a"}},
            "encryptedData": {"value": blob},
        },
    }


@pytest.mark.parametrize("scope", SCOPES)
def test_raw_both_directions(kubeseal_path, cert_path, key_path, tmp_path, scope) -> None:
    value = tmp_path / "value"
    value.write_bytes(b"raw \x01 value")
    theirs = kubeseal(
        kubeseal_path, "--cert", cert_path, "--raw", "--from-file", str(value), *_raw_args(scope)
    )
    assert theirs.returncode == 0, theirs.stderr
    ours = run_sealkit("--cert", cert_path, "--raw", "--from-file", str(value), *_raw_args(scope))
    assert ours.returncode == 0, ours.stderr
    for blob in (theirs.stdout.decode(), ours.stdout):
        wrapped = json.dumps(_wrap_raw(blob, scope)).encode()
        by_sealkit = run_sealkit(
            "--recovery-unseal", "--recovery-private-key", key_path, input=wrapped
        )
        by_kubeseal = kubeseal(
            kubeseal_path, "--recovery-unseal", "--recovery-private-key", key_path, input=wrapped
        )
        assert _data(by_sealkit.stdout) == {"value": b"raw \x01 value"}, by_sealkit.stderr
        assert _data(by_kubeseal.stdout.decode()) == {"value": b"raw \x01 value"}


def test_generated_key_secret_works_with_kubeseal(kubeseal_path, tmp_path) -> None:
    """Our keygen format: kubeseal seals with our cert and recovers with our key Secret List."""
    from cryptography.hazmat.primitives import serialization

    from sealkit.keys import generate_key_and_cert, key_secret_manifest

    key, cert = generate_key_and_cert(2048)
    cert_file = tmp_path / "cert.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [key_secret_manifest(key, cert, name="k1")],
            }
        )
    )
    sealed = kubeseal(kubeseal_path, "--cert", str(cert_file), input=json.dumps(SECRET).encode())
    assert sealed.returncode == 0, sealed.stderr
    opened = kubeseal(
        kubeseal_path, "--recovery-unseal", "--recovery-private-key", str(keys), input=sealed.stdout
    )
    assert _data(opened.stdout.decode()) == EXPECTED
    assert (
        _data(
            run_sealkit(
                "--recovery-unseal", "--recovery-private-key", str(keys), input=sealed.stdout
            ).stdout
        )
        == EXPECTED
    )


def test_template_rendering_matches_kubeseal(kubeseal_path, cert_path, key_path) -> None:
    sealed = json.loads(run_sealkit("--cert", cert_path, input=json.dumps(SECRET)).stdout)
    sealed["spec"]["template"]["data"] = {
        "url": '{{ .dsn }}#{{ index . "user" }}',
        "upper": "{{ .user | b64enc }}",
        "password": "template loses to encryptedData",
        "empty": None,
    }
    text = json.dumps(sealed).encode()
    ours = run_sealkit("--recovery-unseal", "--recovery-private-key", key_path, input=text)
    theirs = kubeseal(
        kubeseal_path, "--recovery-unseal", "--recovery-private-key", key_path, input=text
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert _data(ours.stdout) == _data(theirs.stdout.decode())


def test_kubeseal_error_meanings_match(kubeseal_path, cert_path, tmp_path) -> None:
    """Same failing inputs: both exit non-zero with an `error: ` line of the same meaning."""
    cases = [
        ({**SECRET, "metadata": {"namespace": "x"}}, [], "missing metadata.name"),
        ({**SECRET, "data": {}, "stringData": {}}, [], "secret.data is empty"),
        (SECRET, ["-n", "other"], "namespace mismatch"),
    ]
    for doc, args, needle in cases:
        text = json.dumps(doc)
        ours = run_sealkit("--cert", cert_path, *args, input=text)
        theirs = kubeseal(kubeseal_path, "--cert", cert_path, *args, input=text.encode())
        assert ours.returncode == theirs.returncode == 1
        assert needle in ours.stderr and needle in theirs.stderr.decode()


def test_vectors_are_reproducible_by_kubeseal(kubeseal_path, key_path) -> None:
    """The committed vectors really are kubeseal's: it opens them with the committed key."""
    vectors = Path(__file__).parent / "vectors"
    for sealed in sorted(vectors.glob("sealed-*")):
        opened = kubeseal(
            kubeseal_path,
            "--recovery-unseal",
            "--recovery-private-key",
            key_path,
            "-f",
            str(sealed),
        )
        assert opened.returncode == 0, (sealed.name, opened.stderr)


@pytest.mark.parametrize("word", ["y", "N"])
def test_yaml_1_1_boolean_words_survive_kubeseal(kubeseal_path, cert_path, key_path, word):
    """`namespace: n` is a boolean to Go's YAML 1.1 reader: our YAML must quote it."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app", "namespace": word, "labels": {"flag": word}},
        "stringData": {"k": "v"},
    }
    sealed = run_sealkit("--cert", cert_path, "-o", "yaml", input=json.dumps(secret))
    assert sealed.returncode == 0, sealed.stderr
    assert f'namespace: "{word}"' in sealed.stdout
    opened = kubeseal(
        kubeseal_path,
        "--recovery-unseal",
        "--recovery-private-key",
        key_path,
        "-o",
        "yaml",
        input=sealed.stdout.encode(),
    )
    assert opened.returncode == 0, opened.stderr
    doc = yaml.safe_load(opened.stdout)
    assert doc["metadata"]["namespace"] == word and doc["data"]["k"] == "dg=="
