"""`sealkit reencrypt-tree` offline: every SealedSecret ends sealed with the certificate's key,
files change only in their ciphertexts (comments, order, JSON kept), a second run writes
nothing, `--check` gates CI, and any problem writes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _trees import VALUE, build_tree, key_file, make_key, sealed
from conftest_sealkit import run_sealkit
from cryptography.hazmat.primitives import serialization

from sealkit.keyops import find_sealed, load_keyset, report_offline
from sealkit.keys import fingerprint, load_private_keys
from sealkit.model import unseal_sealed_secret
from sealkit.output import to_yaml

BLOB = re.compile(r"A[gQ][A-Za-z0-9+/=]{300,}")


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {n: make_key() for n in ("old", "new", "lost")}


def fp(pair: Any) -> str:
    return fingerprint(pair[0].public_key())


def cert_file(tmp_path: Path, pair: Any) -> str:
    p = tmp_path / "cert.pem"
    p.write_bytes(pair[1].public_bytes(serialization.Encoding.PEM))
    return str(p)


def skeleton(path: Path) -> str:
    return BLOB.sub("<blob>", path.read_text())


@pytest.fixture
def tree(tmp_path: Path, keys: dict[str, Any]) -> Any:
    layout = [("prod", f"o{i}", keys["old"][0]) for i in range(4)] + [
        ("prod", f"n{i}", keys["new"][0]) for i in range(2)
    ]
    t = build_tree(tmp_path / "tree", layout, per_file=2)
    commented = next(iter(t.files.values()))
    commented.write_text(
        "# owned by team-a\n"
        + commented.read_text().replace("kind: SealedSecret", "kind: SealedSecret  # keep me", 1)
    )
    twin = sealed("twin", "dev", keys["old"][0].public_key())
    twin["metadata"]["annotations"] = {
        "sealkit.dev/cert-fingerprint": fp(keys["old"]),
        "sealkit.dev/source-digest": "hmac-sha256:ab:cd",
    }
    (tmp_path / "tree" / "twin.sealed.json").write_text(json.dumps(twin, indent=2) + "\n")
    return t


def test_offline_reencrypt_keeps_format_and_is_idempotent(
    tree: Any, tmp_path: Path, keys: dict[str, Any]
) -> None:
    kf = str(key_file(tmp_path / "k.yaml", keys["old"], keys["new"]))
    cert = cert_file(tmp_path, keys["new"])
    files = sorted(tree.root.rglob("*.*"))
    before = {p: p.read_text() for p in files}
    proc = run_sealkit(
        "reencrypt-tree", str(tree.root), "--recovery-private-key", kf, "--cert", cert, "--check"
    )
    assert proc.returncode == 1 and proc.stdout.count("needs re-encryption") == 5
    assert {p: p.read_text() for p in files} == before  # --check writes nothing
    proc = run_sealkit(
        "reencrypt-tree", str(tree.root), "--recovery-private-key", kf, "--cert", cert
    )
    assert proc.returncode == 0, proc.stderr
    assert "re-encrypted 5 SealedSecret(s)" in proc.stderr and "2 already current" in proc.stderr
    for p in files:
        assert skeleton(p) == BLOB.sub("<blob>", before[p]).replace(
            fp(keys["old"]), fp(keys["new"])
        )
    assert "# keep me" in next(iter(tree.files.values())).read_text()
    # every SealedSecret now opens with the new key alone, to the same values
    refs, _ = find_sealed([tree.root])
    new_only = load_keyset([key_file(tmp_path / "n.yaml", keys["new"]).read_bytes()])
    rows = report_offline(refs, new_only, workers=1)
    assert all(r.ok and r.fingerprints == (fp(keys["new"]),) for r in rows)
    key = load_private_keys(key_file(tmp_path / "n2.yaml", keys["new"]).read_bytes())
    for ref in refs:
        data = unseal_sealed_secret(ref.obj, key)["data"]
        assert __import__("base64").b64decode(data["password"]).decode() == VALUE
    # second run: nothing to do, nothing written
    after = {p: p.read_text() for p in files}
    proc = run_sealkit(
        "reencrypt-tree", str(tree.root), "--recovery-private-key", kf, "--cert", cert, "--check"
    )
    assert proc.returncode == 0, proc.stdout
    proc = run_sealkit(
        "reencrypt-tree", str(tree.root), "--recovery-private-key", kf, "--cert", cert
    )
    assert proc.returncode == 0 and "re-encrypted 0" in proc.stderr
    assert {p: p.read_text() for p in files} == after
    for text in (proc.stdout, proc.stderr):
        assert VALUE not in text


def test_unopenable_value_writes_nothing(tree: Any, tmp_path: Path, keys: dict[str, Any]) -> None:
    (tree.root / "lost.yaml").write_text(
        to_yaml(sealed("lost", "prod", keys["lost"][0].public_key()))
    )
    files = sorted(tree.root.rglob("*.*"))
    before = {p: p.read_text() for p in files}
    proc = run_sealkit(
        "reencrypt-tree",
        str(tree.root),
        "--recovery-private-key",
        str(key_file(tmp_path / "k.yaml", keys["old"], keys["new"])),
        "--cert",
        cert_file(tmp_path, keys["new"]),
    )
    assert proc.returncode == 1
    assert "prod/lost: value password opens with none of the keys" in proc.stderr
    assert proc.stderr.splitlines()[-1] == "error: 1 problem(s); nothing written"
    assert {p: p.read_text() for p in files} == before


def test_check_needs_keys(tmp_path: Path) -> None:
    proc = run_sealkit("reencrypt-tree", str(tmp_path), "--check")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --check needs")
