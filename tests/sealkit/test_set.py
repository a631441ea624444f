"""`sealkit set FILE KEY`: seal one value into an existing SealedSecret, format preserved."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sealkit._exceptions import InputError, UsageError
from sealkit.edit import set_value
from sealkit.model import seal_secret, unseal_sealed_secret
from sealkit.output import dump_all
from sealkit.scopes import Scope
from tests.sealkit.beyond_support import (
    KeyPair,
    assert_no_leak,
    assert_one_line_error,
    kubeseal_binary,
    kubeseal_recovery_unseal,
    make_keypair,
    run_cli,
)

NEW_VALUE = "n3w-s3cret-value"
OLD_VALUE = "old-s3cret-value"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_keypair(tmp_path_factory.mktemp("keys"))


def sealed_doc(keys: KeyPair, *, name: str = "db", scope: Scope | None = None) -> dict:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "prod", "labels": {"app": "x"}},
        "stringData": {"user": "admin", "password": OLD_VALUE},
    }
    return seal_secret(secret, keys.public_key(), scope=scope)


def unsealed_values(doc: dict, keys: KeyPair) -> dict[str, bytes]:
    secret = unseal_sealed_secret(doc, keys.private_keys())
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def yaml_file_text(doc: dict) -> str:
    enc = doc["spec"]["encryptedData"]
    return (
        "# Database credentials (sealed)\n"
        "apiVersion: bitnami.com/v1alpha1\n"
        "kind: SealedSecret\n"
        "metadata:\n"
        f"  name: {doc['metadata']['name']}  # keep this name\n"
        "  namespace: prod\n"
        + ("  annotations:\n" if doc["metadata"].get("annotations") else "")
        + "".join(
            f'    {k}: "{v}"\n' for k, v in (doc["metadata"].get("annotations") or {}).items()
        )
        + "spec:\n"
        "  encryptedData:\n"
        f"    user: {enc['user']}\n"
        "    # rotated quarterly\n"
        f"    password: {enc['password']}\n"
        "  template:\n"
        "    metadata:\n"
        f"      name: {doc['metadata']['name']}\n"
        "      namespace: prod\n"
    )


def load(text: str) -> list:
    from sealkit.documents import load_documents

    return load_documents(text)


def test_replace_keeps_comments_order_and_other_values(keys: KeyPair) -> None:
    doc = sealed_doc(keys)
    text = yaml_file_text(doc)
    result = set_value(text, "password", NEW_VALUE.encode(), keys.public_key(), source="f.yaml")
    assert result.replaced and (result.namespace, result.name) == ("prod", "db")
    out = result.text
    assert out.startswith("# Database credentials (sealed)\n")
    assert "# keep this name" in out and "# rotated quarterly" in out
    assert out.index("user:") < out.index("password:")
    assert doc["spec"]["encryptedData"]["user"] in out  # untouched ciphertext
    assert doc["spec"]["encryptedData"]["password"] not in out
    (new_doc,) = load(out)
    assert unsealed_values(new_doc, keys) == {"user": b"admin", "password": NEW_VALUE.encode()}
    assert NEW_VALUE not in out


def test_add_new_key_appends(keys: KeyPair) -> None:
    text = yaml_file_text(sealed_doc(keys))
    result = set_value(text, "api.token", b"\x00binary\xff", keys.public_key())
    assert not result.replaced
    (new_doc,) = load(result.text)
    assert list(new_doc["spec"]["encryptedData"]) == ["user", "password", "api.token"]
    assert unsealed_values(new_doc, keys)["api.token"] == b"\x00binary\xff"


def test_json_stays_json(keys: KeyPair) -> None:
    text = dump_all([sealed_doc(keys)], "json")
    result = set_value(text, "password", NEW_VALUE.encode(), keys.public_key())
    parsed = json.loads(result.text)
    assert list(parsed) == ["kind", "apiVersion", "metadata", "spec"]  # key order kept
    assert unsealed_values(parsed, keys)["password"] == NEW_VALUE.encode()


@pytest.mark.parametrize("scope", [Scope.NAMESPACE_WIDE, Scope.CLUSTER_WIDE])
def test_uses_the_files_own_scope(keys: KeyPair, scope: Scope) -> None:
    text = dump_all([sealed_doc(keys, scope=scope)], "yaml")
    result = set_value(text, "extra", b"v", keys.public_key())
    (new_doc,) = load(result.text)
    assert unsealed_values(new_doc, keys)["extra"] == b"v"
    # the label really is the scope's: a renamed copy still opens (not strict)
    new_doc["metadata"]["name"] = "renamed"
    assert unsealed_values(new_doc, keys)["extra"] == b"v"


def test_multi_document_needs_name(keys: KeyPair) -> None:
    text = dump_all(
        [sealed_doc(keys, name="a"), {"kind": "ConfigMap"}, sealed_doc(keys, name="b")], "yaml"
    )
    with pytest.raises(UsageError, match=r"holds 2 SealedSecrets \(a, b\); choose one with --name"):
        set_value(text, "k", b"v", keys.public_key())
    result = set_value(text, "k", b"v", keys.public_key(), name="b")
    docs = load(result.text)
    assert "k" not in docs[0]["spec"]["encryptedData"]
    assert docs[1] == {"kind": "ConfigMap"}
    assert unsealed_values(docs[2], keys)["k"] == b"v"
    with pytest.raises(InputError, match='no SealedSecret named "c"'):
        set_value(text, "k", b"v", keys.public_key(), name="c")


def test_list_item(keys: KeyPair) -> None:
    from sealkit.output import to_yaml

    text = to_yaml({"apiVersion": "v1", "kind": "List", "items": [sealed_doc(keys)]})
    result = set_value(text, "k", b"v", keys.public_key())
    (lst,) = load(result.text)
    assert unsealed_values(lst["items"][0], keys)["k"] == b"v"


def test_drops_seal_tree_digest(keys: KeyPair) -> None:
    from sealkit.tree import CERT_ANNOTATION, DIGEST_ANNOTATION

    doc = sealed_doc(keys)
    doc["metadata"]["annotations"] = {
        DIGEST_ANNOTATION: "hmac-sha256:x:y",
        CERT_ANNOTATION: keys.fingerprint,
    }
    text = yaml_file_text(doc)
    out = set_value(text, "k", b"v", keys.public_key(), fingerprint=keys.fingerprint).text
    assert DIGEST_ANNOTATION not in out and CERT_ANNOTATION in out
    out = set_value(text, "k", b"v", keys.public_key(), fingerprint="SHA256:other").text
    assert CERT_ANNOTATION not in out and "annotations" not in out


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("kind: ConfigMap\n", InputError, "no SealedSecret found"),
        ("kind: SealedSecret\nmetadata: {namespace: n}\n", InputError, "no metadata.name"),
        ("kind: SealedSecret\nmetadata: {name: a}\n", InputError, "no metadata.namespace"),
        (
            "kind: SealedSecret\nmetadata: {name: a, namespace: b}\nspec: [1]\n",
            InputError,
            "spec is not a map",
        ),
        ("kind: SealedSecret\nmetadata: {name: a\n", InputError, "malformed YAML"),
    ],
)
def test_bad_files(keys: KeyPair, text: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        set_value(text, "k", b"v", keys.public_key())


@pytest.mark.parametrize("key", ["", "a/b", "spa ce", "x" * 254])
def test_bad_keys(keys: KeyPair, key: str) -> None:
    with pytest.raises(UsageError):
        set_value("kind: SealedSecret\n", key, b"v", keys.public_key())


def test_missing_encrypted_data_is_created(keys: KeyPair) -> None:
    text = "kind: SealedSecret\nmetadata: {name: a, namespace: b}\nspec: {}\n"
    (doc,) = load(set_value(text, "k", b"v", keys.public_key()).text)
    assert list(doc["spec"]["encryptedData"]) == ["k"]


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def sealed_file(tmp_path: Path, keys: KeyPair) -> Path:
    path = tmp_path / "db.sealed.yaml"
    path.write_text(yaml_file_text(sealed_doc(keys)))
    path.chmod(0o640)
    return path


def test_cli_from_stdin(sealed_file: Path, keys: KeyPair) -> None:
    result = run_cli(
        ["set", str(sealed_file), "password", "--cert", str(keys.cert)], stdin=NEW_VALUE.encode()
    )
    assert result.code == 0, result.err
    assert result.out == ""
    assert result.err == f"replaced key password in SealedSecret prod/db ({sealed_file})\n"
    assert_no_leak([NEW_VALUE], result.out, result.err, sealed_file.read_text())
    (doc,) = load(sealed_file.read_text())
    assert unsealed_values(doc, keys)["password"] == NEW_VALUE.encode()
    assert sealed_file.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in sealed_file.parent.iterdir()] == [sealed_file.name]


def test_cli_from_file_exact_bytes(sealed_file: Path, keys: KeyPair, tmp_path: Path) -> None:
    value_file = tmp_path.parent / f"{tmp_path.name}-value.bin"
    value_file.write_bytes(b"line1\nline2\n")
    result = run_cli(
        ["set", str(sealed_file), "cfg", "--from-file", str(value_file), "--cert", str(keys.cert)]
    )
    assert result.code == 0, result.err
    assert result.err.startswith("added key cfg")
    (doc,) = load(sealed_file.read_text())
    assert unsealed_values(doc, keys)["cfg"] == b"line1\nline2\n"


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["KEY/bad"], 2, "invalid key"),
        (["k", "--cert", "/nonexistent.pem"], 1, "no such file or directory"),
        (["k", "--from-file", "/nonexistent.bin"], 1, "cannot read"),
        (["k", "--name", "other"], 1, 'no SealedSecret named "other"'),
        (["k", "--scope", "x"], 2, "No such option"),
    ],
)
def test_cli_errors_leave_file_untouched(
    sealed_file: Path, keys: KeyPair, args: list[str], code: int, match: str
) -> None:
    before = sealed_file.read_bytes()
    cert = [] if "--cert" in args else ["--cert", str(keys.cert)]
    result = run_cli(["set", str(sealed_file), *args, *cert], stdin=NEW_VALUE.encode())
    assert result.code == code
    assert_one_line_error(result)
    assert match in result.err
    assert sealed_file.read_bytes() == before
    assert_no_leak([NEW_VALUE], result.out, result.err)


def test_cli_missing_and_malformed_file(tmp_path: Path, keys: KeyPair) -> None:
    result = run_cli(["set", str(tmp_path / "none.yaml"), "k", "--cert", str(keys.cert)])
    assert result.code == 1 and "no such file" in result.err
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"kind: SealedSecret\nmetadata: {{name: '{OLD_VALUE}\n")
    result = run_cli(["set", str(bad), "k", "--cert", str(keys.cert)], stdin=b"v")
    assert result.code == 1
    assert_one_line_error(result)
    assert_no_leak([OLD_VALUE], result.err)


@pytest.mark.stack
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_real_kubeseal_opens_the_edited_file(tmp_path: Path, keys: KeyPair, fmt: str) -> None:
    kubeseal = kubeseal_binary()
    path = tmp_path / f"db.sealed.{fmt}"
    doc = sealed_doc(keys)
    path.write_text(yaml_file_text(doc) if fmt == "yaml" else dump_all([doc], "json"))
    result = run_cli(
        ["set", str(path), "password", "--cert", str(keys.cert)], stdin=NEW_VALUE.encode()
    )
    assert result.code == 0, result.err
    result = run_cli(["set", str(path), "added", "--cert", str(keys.cert)], stdin=b"more")
    assert result.code == 0, result.err
    opened = kubeseal_recovery_unseal(kubeseal, path, keys.key_secret, home=tmp_path)
    values = {k: base64.b64decode(v) for k, v in opened["data"].items()}
    assert values == {"user": b"admin", "password": NEW_VALUE.encode(), "added": b"more"}


def test_atomic_write_modes_and_no_clobber(tmp_path: Path) -> None:
    import os

    from sealkit.files import atomic_write

    mask = os.umask(0o022)
    try:
        new = tmp_path / "new.yaml"
        atomic_write(new, b"a")
        assert (new.read_bytes(), new.stat().st_mode & 0o777) == (b"a", 0o644)
        new.chmod(0o640)
        atomic_write(new, b"b")
        assert (new.read_bytes(), new.stat().st_mode & 0o777) == (b"b", 0o640)
        key = tmp_path / "key.yaml"
        atomic_write(key, b"k", mode=0o600, overwrite=False)
        assert key.stat().st_mode & 0o777 == 0o600
        with pytest.raises(InputError, match="already exists"):
            atomic_write(key, b"other", mode=0o600, overwrite=False)
        assert key.read_bytes() == b"k"
        with pytest.raises(IsADirectoryError):
            atomic_write(tmp_path, b"x")
    finally:
        os.umask(mask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.yaml", "new.yaml"]
