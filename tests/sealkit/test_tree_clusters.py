"""`sealkit seal-tree --clusters FILE`: one twin set per cluster, each opened only by its key."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from sealkit.documents import load_documents
from tests.sealkit.beyond_support import (
    KeyPair,
    _hermetic_env,
    assert_no_leak,
    assert_one_line_error,
    kubeseal_binary,
    kubeseal_recovery_unseal,
    make_keypair,
    run_cli,
)

PASSWORD = "cl-pass-Rt83"
TOKEN = "cl-token-Wq27"


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_keypair(tmp_path_factory.mktemp("prod"))


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_keypair(tmp_path_factory.mktemp("staging"))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prod: KeyPair, staging: KeyPair) -> Path:
    """repo/tree (sources), repo/certs, repo/clusters.yaml; staging writes to repo/staging."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    repo = tmp_path / "repo"
    (repo / "tree" / "apps").mkdir(parents=True)
    (repo / "certs").mkdir()
    (repo / "certs" / "prod.pem").write_bytes(prod.cert.read_bytes())
    (repo / "certs" / "staging.pem").write_bytes(staging.cert.read_bytes())
    (repo / "tree" / "apps" / "db.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: app}\n"
        f"stringData: {{password: {PASSWORD}}}\n"
    )
    (repo / "tree" / "api.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: api, namespace: app}\n"
        f"stringData: {{token: {TOKEN}}}\n"
    )
    (repo / "clusters.yaml").write_text(
        "clusters:\n"
        "  prod:\n    cert: certs/prod.pem\n"
        "  staging:\n    cert: certs/staging.pem\n    dir: staging\n"
    )
    return repo


def seal(repo: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_cli(
        ["seal-tree", str(repo / "tree"), "--clusters", str(repo / "clusters.yaml"), *args]
    )


def test_one_twin_per_cluster_beside_or_in_its_dir(repo: Path) -> None:
    result = seal(repo)
    assert result.code == 0, result.err
    prod_twin = repo / "tree" / "apps" / "db.prod.sealed.yaml"
    staging_twin = repo / "staging" / "apps" / "db.sealed.yaml"
    assert prod_twin.exists() and staging_twin.exists()
    assert (repo / "tree" / "api.prod.sealed.yaml").exists()
    assert (repo / "staging" / "api.sealed.yaml").exists()
    assert not (repo / "tree" / "apps" / "db.sealed.yaml").exists()
    assert sorted(result.out.splitlines()) == sorted(
        f"wrote {p} (1 SealedSecret(s))"
        for p in (
            prod_twin,
            staging_twin,
            repo / "tree" / "api.prod.sealed.yaml",
            repo / "staging" / "api.sealed.yaml",
        )
    )
    assert "2 Secret(s) in 2 file(s) for 2 cluster(s): 4 sealed" in result.err
    assert_no_leak([PASSWORD, TOKEN], result.out, result.err)
    # a re-run writes nothing; --check passes per cluster, and compares each cluster's cert
    again = seal(repo)
    assert again.code == 0 and again.out == ""
    assert seal(repo, "--check").code == 0
    assert run_cli(["seal-tree", str(repo / "tree"), "--check"]).code == 1  # no plain twins


def test_check_is_per_cluster(repo: Path, prod: KeyPair, tmp_path: Path) -> None:
    assert seal(repo).code == 0
    (tmp_path / "other").mkdir()
    other = make_keypair(tmp_path / "other")
    (repo / "certs" / "staging.pem").write_bytes(other.cert.read_bytes())  # staging re-keyed
    result = seal(repo, "--check")
    assert result.code == 1
    lines = result.out.splitlines()
    assert len(lines) == 2 and all(
        "for cluster staging: twin was sealed with another certificate" in line for line in lines
    )
    (repo / "certs" / "staging.pem").write_bytes(prod.cert.read_bytes())
    (repo / "staging" / "api.sealed.yaml").unlink()
    result = seal(repo, "--check")
    assert result.out.count("for cluster staging") == 2  # missing twin + other cert
    assert "Secret app/api for cluster staging: no sealed twin" in result.out
    assert "for cluster prod" not in result.out
    assert seal(repo).code == 0 and seal(repo, "--check").code == 0


def test_each_cluster_opens_only_its_own_twins(
    repo: Path, prod: KeyPair, staging: KeyPair, tmp_path: Path
) -> None:
    kubeseal = kubeseal_binary()
    assert seal(repo).code == 0
    twins = {
        "prod": (repo / "tree" / "apps" / "db.prod.sealed.yaml", prod, staging),
        "staging": (repo / "staging" / "apps" / "db.sealed.yaml", staging, prod),
    }
    for twin, own, other in twins.values():
        opened = kubeseal_recovery_unseal(kubeseal, twin, own.key_secret, home=tmp_path)
        assert base64.b64decode(opened["data"]["password"]) == PASSWORD.encode()
        proc = subprocess.run(
            [kubeseal, "--recovery-unseal", "--recovery-private-key", str(other.key_secret)]
            + ["-f", str(twin)],
            capture_output=True,
            timeout=60,
            check=False,
            env=_hermetic_env(tmp_path),
        )
        assert proc.returncode != 0  # the other cluster's key does not open it
        assert PASSWORD.encode() not in proc.stdout + proc.stderr
    prod_doc = load_documents((repo / "tree" / "apps" / "db.prod.sealed.yaml").read_text())[0]
    staging_doc = load_documents((repo / "staging" / "apps" / "db.sealed.yaml").read_text())[0]
    annotations = "sealkit.dev/cert-fingerprint"
    assert prod_doc["metadata"]["annotations"][annotations] == prod.fingerprint
    assert staging_doc["metadata"]["annotations"][annotations] == staging.fingerprint


def test_a_bad_cluster_cert_writes_nothing(repo: Path) -> None:
    (repo / "certs" / "staging.pem").write_text("not a certificate")
    result = seal(repo)
    assert result.code == 1
    assert_one_line_error(result)
    assert not list(repo.rglob("*.sealed.yaml")) and not (repo / "staging").exists()


def test_a_bad_source_writes_no_cluster_dir(repo: Path) -> None:
    (repo / "tree" / "zz.yaml").write_text("kind: Secret\nmetadata: {name: [\n")
    result = seal(repo)
    assert result.code == 1 and result.err.count("error: ") == 1
    assert not list(repo.rglob("*.sealed.yaml")) and not (repo / "staging").exists()
    assert not list(repo.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clusters: [\n", "malformed YAML at line 2"),
        ("clusters: {}\n", "clusters must be a non-empty map"),
        ("other: 1\n", "expected one top-level key, clusters"),
        ("clusters: {Prod: {cert: certs/prod.pem}}\n", "cluster name 'Prod' is not a DNS label"),
        ("clusters: {prod: {cert: certs/prod.pem, dri: x}}\n", "unknown key 'dri'"),
        ("clusters: {prod: certs/prod.pem}\n", "cluster prod: expected a map"),
        ("clusters: {prod: {dir: x}}\n", "cert must be a path or an http(s) URL"),
        ("clusters: {prod: {cert: 'ftp://x/c.pem'}}\n", "cert URL must be http(s)"),
        ("clusters: {prod: {cert: certs/prod.pem, dir: .}}\n", "must not contain the source tree"),
        (
            "clusters: {a: {cert: certs/prod.pem, dir: o}, b: {cert: certs/prod.pem, dir: o/b}}\n",
            "clusters a and b share dir o/b",
        ),
        (
            "clusters:\n  prod: {cert: certs/prod.pem}\n  prod: {cert: certs/staging.pem}\n",
            "line 3: duplicate key 'prod'",
        ),
        ("clusters: {a: {cert: x}}\n---\nclusters: {b: {cert: y}}\n", "expected one YAML document"),
    ],
)
def test_bad_clusters_files_are_one_line_usage_errors(repo: Path, text: str, message: str) -> None:
    (repo / "clusters.yaml").write_text(text)
    result = seal(repo)
    assert result.code == 2, result.err
    assert_one_line_error(result)
    assert message in result.err and str(repo / "clusters.yaml") in result.err
    assert not list(repo.rglob("*.sealed.yaml"))


def test_clusters_file_errors_beyond_its_content(repo: Path) -> None:
    result = run_cli(["seal-tree", str(repo / "tree"), "--clusters", str(repo / "missing.yaml")])
    assert result.code == 2 and "No such file or directory" in result.err
    assert_one_line_error(result)
    (repo / "big.yaml").write_text("#" * 70_000)
    result = run_cli(["seal-tree", str(repo / "tree"), "--clusters", str(repo / "big.yaml")])
    assert result.code == 2 and "larger than 64 KiB" in result.err
    result = seal(repo, "--cert", str(repo / "certs" / "prod.pem"))
    assert result.code == 2 and "not with --cert" in result.err
    assert_one_line_error(result)
    (repo / "clusters.yaml").write_text("clusters: {prod: {cert: certs/nope.pem}}\n")
    result = seal(repo)
    assert result.code == 1
    assert_one_line_error(result)
