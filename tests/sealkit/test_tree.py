"""`sealkit seal-tree`: one process seals a GitOps tree; `--check` decides without the key."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
import yaml

from sealkit.model import unseal_sealed_secret
from sealkit.scopes import Scope
from sealkit.tree import (
    CERT_ANNOTATION,
    DIGEST_ANNOTATION,
    DigestKey,
    is_twin_path,
    source_digest,
    twin_path,
)
from sealkit.tree import twin_path_source as source_of
from tests.sealkit.beyond_support import (
    KeyPair,
    assert_no_leak,
    assert_one_line_error,
    kubeseal_binary,
    kubeseal_recovery_unseal,
    make_keypair,
    run_cli,
)

A_PASSWORD = "a-pass-Xq81"
B_TOKEN = "b-token-Zp44"
L_VALUE = "list-value-Kk12"
ALL_VALUES = [
    A_PASSWORD,
    B_TOKEN,
    L_VALUE,
    base64.b64encode(B_TOKEN.encode()).decode(),
    base64.b64encode(L_VALUE.encode()).decode(),
]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


DB_YAML = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: prod}}
data: {{level: debug}}
---
apiVersion: v1
kind: Secret
metadata:
  name: a
  namespace: prod
  labels: {{app: db}}
type: Opaque
stringData:
  password: {A_PASSWORD}
  user: admin
---
apiVersion: v1
kind: Secret
metadata: {{name: empty, namespace: prod}}
---
apiVersion: v1
kind: Secret
metadata: {{name: b, namespace: prod}}
data:
  token: {b64(B_TOKEN)}
"""

LIST_JSON = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "l1", "namespace": "web"},
            "data": {"v": b64(L_VALUE)},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "l2", "namespace": "web"},
            "stringData": {"w": "x"},
        },
    ],
}

SEALED_ONLY = """\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata: {name: already, namespace: prod}
spec: {encryptedData: {k: AgBy3i4OJSWK}}
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_keypair(tmp_path_factory.mktemp("other"))


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    root = tmp_path / "tree"
    (root / "apps" / "db").mkdir(parents=True)
    (root / "apps" / "db" / "db.yaml").write_text(DB_YAML)
    (root / "apps" / "list.json").write_text(json.dumps(LIST_JSON, indent=2))
    (root / "apps" / "sealed-only.yaml").write_text(SEALED_ONLY)
    (root / "README.md").write_text("kind: Secret\n")
    return root


def seal(root: Path, keys: KeyPair, *args: str):
    return run_cli(["seal-tree", str(root), "--cert", str(keys.cert), *args])


def check(root: Path, *args: str):
    return run_cli(["seal-tree", str(root), "--check", *args])


def values_of(doc: dict, keys: KeyPair) -> dict[str, bytes]:
    secret = unseal_sealed_secret(doc, keys.private_keys())
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def load_all(path: Path) -> list:
    from sealkit.documents import load_documents

    return load_documents(path.read_text())


# ----------------------------------------------------------------------------- naming, digest


def test_twin_naming() -> None:
    assert twin_path(Path("d/foo.yaml")) == Path("d/foo.sealed.yaml")
    assert twin_path(Path("d/foo.yml")) == Path("d/foo.sealed.yml")
    assert twin_path(Path("foo.bar.json")) == Path("foo.bar.sealed.json")
    assert is_twin_path(Path("foo.sealed.yaml")) and not is_twin_path(Path("foo.yaml"))
    assert not is_twin_path(Path("foo.sealed.txt"))
    assert source_of(Path("d/foo.sealed.json")) == Path("d/foo.json")


def test_digest_is_keyed_canonical_and_value_free() -> None:
    key = DigestKey(b"k" * 32)
    ident = ("ns1", "a", Scope.STRICT)
    s1 = {"kind": "Secret", "metadata": {"name": "a"}, "stringData": {"p": "hunter2"}}
    s2 = {"kind": "Secret", "metadata": {"name": "a"}, "data": {"p": b64("hunter2")}}
    d1 = source_digest(s1, ident, key)
    assert d1 == source_digest(s2, ident, key)  # same bytes, either field
    wrapped = {"kind": "Secret", "metadata": {"name": "a"}, "data": {"p": "aHVu\r\ndGVyMg=="}}
    assert source_digest(wrapped, ident, key) == d1  # line-wrapped base64
    assert d1.startswith(f"hmac-sha256:{key.key_id}:")
    others = {
        source_digest({**s1, "stringData": {"p": "hunter3"}}, ident, key),
        source_digest({**s1, "type": "Opaque"}, ident, key),
        source_digest(s1, ("ns2", "a", Scope.STRICT), key),
        source_digest(s1, ("ns1", "a", Scope.NAMESPACE_WIDE), key),
        source_digest(s1, ident, DigestKey(b"j" * 32)),
    }
    assert d1 not in others and len(others) == 5
    assert DigestKey(b"j" * 32).key_id not in d1
    for leak in ("hunter2", b64("hunter2"), b"hunter2".hex()):
        assert leak not in d1
    # without the key, the annotation is not a plain hash of the value
    import hashlib

    assert hashlib.sha256(b"hunter2").hexdigest() not in d1


# ----------------------------------------------------------------------------- sealing


def test_seals_tree_beside_sources(tree: Path, keys: KeyPair) -> None:
    result = seal(tree, keys)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [  # a directory's files, then its subdirectories
        f"wrote {tree}/apps/list.sealed.json (2 SealedSecret(s))",
        f"wrote {tree}/apps/db/db.sealed.yaml (2 SealedSecret(s))",
    ]
    assert "4 Secret(s) in 2 file(s): 4 sealed, 0 up to date; 2 twin(s) written" in result.err
    assert_no_leak(ALL_VALUES, result.out, result.err)
    assert not (tree / "apps" / "sealed-only.sealed.yaml").exists()

    db_twin = tree / "apps" / "db" / "db.sealed.yaml"
    text = db_twin.read_text()
    assert text.startswith("---\napiVersion: bitnami.com/v1alpha1\n")
    assert_no_leak(ALL_VALUES, text)
    a_doc, b_doc = load_all(db_twin)  # source order, ConfigMap and empty Secret dropped
    assert (a_doc["metadata"]["name"], b_doc["metadata"]["name"]) == ("a", "b")
    assert values_of(a_doc, keys) == {"password": A_PASSWORD.encode(), "user": b"admin"}
    assert values_of(b_doc, keys) == {"token": B_TOKEN.encode()}
    assert a_doc["spec"]["template"]["metadata"]["labels"] == {"app": "db"}
    assert a_doc["spec"]["template"]["type"] == "Opaque"
    annotations = a_doc["metadata"]["annotations"]
    assert annotations[CERT_ANNOTATION] == keys.fingerprint
    assert annotations[DIGEST_ANNOTATION].startswith("hmac-sha256:")
    assert "annotations" not in a_doc["spec"]["template"]["metadata"]  # never reaches the Secret

    list_twin = tree / "apps" / "list.sealed.json"
    (lst,) = json.loads("[" + list_twin.read_text() + "]")  # JSON in, JSON out
    assert lst["kind"] == "List" and lst["apiVersion"] == "v1"
    l1, l2 = lst["items"]
    assert values_of(l1, keys) == {"v": L_VALUE.encode()}
    assert values_of(l2, keys) == {"w": b"x"}

    key_file = tree / ".sealkit" / "digest.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tree / ".sealkit" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert "created digest key" in result.err


def test_rerun_writes_nothing_and_check_passes(tree: Path, keys: KeyPair) -> None:
    assert seal(tree, keys).code == 0
    twins = sorted(tree.rglob("*.sealed.*"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in twins}
    result = seal(tree, keys)
    assert result.code == 0 and result.out == ""
    assert "0 sealed, 4 up to date; 0 twin(s) written" in result.err
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in twins} == before
    result = check(tree)
    assert (result.code, result.out) == (0, "")
    assert "up to date" in result.err
    assert check(tree, "--cert", str(keys.cert)).code == 0


def test_changed_value_reseals_only_that_secret(tree: Path, keys: KeyPair) -> None:
    assert seal(tree, keys).code == 0
    db_twin = tree / "apps" / "db" / "db.sealed.yaml"
    list_twin = tree / "apps" / "list.sealed.json"
    old_a, old_b = load_all(db_twin)
    list_before = list_twin.read_bytes()
    source = tree / "apps" / "db" / "db.yaml"
    source.write_text(source.read_text().replace(A_PASSWORD, "rotated-Q9"))

    result = check(tree)
    assert result.code == 1
    assert result.out == f"{source}:6: Secret prod/a: twin is out of date\n"
    assert_no_leak([*ALL_VALUES, "rotated-Q9"], result.out, result.err)

    result = seal(tree, keys)
    assert result.out == f"wrote {db_twin} (2 SealedSecret(s))\n"
    new_a, new_b = load_all(db_twin)
    assert new_b == old_b  # untouched ciphertexts: no Git noise
    assert new_a["spec"]["encryptedData"] != old_a["spec"]["encryptedData"]
    assert values_of(new_a, keys)["password"] == b"rotated-Q9"
    assert list_twin.read_bytes() == list_before
    assert check(tree).code == 0


def test_metadata_change_and_key_removal_are_stale(tree: Path, keys: KeyPair) -> None:
    assert seal(tree, keys).code == 0
    source = tree / "apps" / "db" / "db.yaml"
    source.write_text(source.read_text().replace("{app: db}", "{app: db2}"))
    assert check(tree).code == 1
    assert seal(tree, keys).code == 0
    source.write_text(source.read_text().replace("  user: admin\n", ""))
    assert check(tree).code == 1
    assert seal(tree, keys).code == 0
    a_doc = load_all(tree / "apps" / "db" / "db.sealed.yaml")[0]
    assert list(a_doc["spec"]["encryptedData"]) == ["password"]


def test_check_with_another_cert_and_resealing(
    tree: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    assert seal(tree, keys).code == 0
    result = check(tree, "--cert", str(other_keys.cert))
    assert result.code == 1
    assert result.out.count("twin was sealed with another certificate") == 4
    result = seal(tree, other_keys)
    assert "4 sealed, 0 up to date" in result.err
    a_doc = load_all(tree / "apps" / "db" / "db.sealed.yaml")[0]
    assert values_of(a_doc, other_keys)["password"] == A_PASSWORD.encode()


def test_check_fresh_tree_changes_nothing(tree: Path) -> None:
    result = check(tree)
    assert result.code == 1
    assert result.out.count("no sealed twin") == 0  # no digest key yet: says so instead
    assert result.out.count("no digest key") == 4
    assert not list(tree.rglob("*.sealed.*")) and not (tree / ".sealkit").exists()


def test_check_with_lost_or_foreign_digest_key(tree: Path, keys: KeyPair, tmp_path: Path) -> None:
    assert seal(tree, keys).code == 0
    foreign = tmp_path / "foreign.key"
    foreign.write_text("ab" * 32)
    result = check(tree, "--digest-key-file", str(foreign))
    assert result.code == 1
    assert result.out.count("twin was sealed with another digest key") == 4
    (tree / ".sealkit" / "digest.key").unlink()
    result = check(tree)
    assert result.code == 1 and "no digest key" in result.out
    bad = tmp_path / "bad.key"
    bad.write_text("not hex")
    result = check(tree, "--digest-key-file", str(bad))
    assert result.code == 1
    assert_one_line_error(result)


def test_force_reseals_everything(tree: Path, keys: KeyPair) -> None:
    assert seal(tree, keys).code == 0
    result = seal(tree, keys, "--force")
    assert "4 sealed, 0 up to date; 2 twin(s) written" in result.err
    assert check(tree).code == 0


def test_scope_flag(tree: Path, keys: KeyPair) -> None:
    result = seal(tree, keys, "--scope", "cluster-wide")
    assert result.code == 0, result.err
    a_doc = load_all(tree / "apps" / "db" / "db.sealed.yaml")[0]
    assert a_doc["metadata"]["annotations"]["sealedsecrets.bitnami.com/cluster-wide"] == "true"
    a_doc["metadata"].update(name="renamed", namespace="elsewhere")
    assert values_of(a_doc, keys)["password"] == A_PASSWORD.encode()
    assert check(tree, "--scope", "cluster-wide").code == 0
    assert check(tree).code == 1  # strict twins would differ
    result = run_cli(["seal-tree", str(tree), "--check", "--scope", "bogus"])
    assert result.code == 2 and "must be one of" in result.err


def test_namespace_sources(
    tree: Path, keys: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nons = tree / "apps" / "nons.yaml"
    nons.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: n1}\nstringData: {k: v}\n")
    result = seal(tree, keys)  # KUBECONFIG points nowhere: no namespace to take
    assert result.code == 1
    assert_one_line_error(result)
    assert f"{nons}:1: secret must declare a namespace" in result.err
    assert not list(tree.rglob("*.sealed.*"))  # nothing written at all

    assert seal(tree, keys, "-n", "team").code == 0
    (doc,) = load_all(tree / "apps" / "nons.sealed.yaml")
    assert doc["metadata"]["namespace"] == "team"
    assert values_of(doc, keys) == {"k": b"v"}

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {"current-context": "c", "contexts": [{"name": "c", "context": {"namespace": "ctxns"}}]}
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert check(tree).code == 1  # the twin is for "team", the context now says "ctxns"
    assert seal(tree, keys).code == 0
    assert load_all(tree / "apps" / "nons.sealed.yaml")[0]["metadata"]["namespace"] == "ctxns"

    # -n only fills missing namespaces; declared ones stay (a tree spans many namespaces)
    assert seal(tree, keys, "-n", "other").code == 0
    assert load_all(tree / "apps" / "nons.sealed.yaml")[0]["metadata"]["namespace"] == "other"
    assert load_all(tree / "apps" / "db" / "db.sealed.yaml")[0]["metadata"]["namespace"] == "prod"


def test_malformed_or_invalid_input_writes_nothing(tree: Path, keys: KeyPair) -> None:
    bad = tree / "apps" / "bad.yaml"
    bad.write_text(f"kind: Secret\nstringData:\n  p: '{A_PASSWORD}\n")
    b64bad = tree / "apps" / "b64.yaml"
    b64bad.write_text("kind: Secret\nmetadata: {name: x, namespace: y}\ndata: {k: '!!'}\n")
    intkeys = tree / "apps" / "intkeys.yaml"
    intkeys.write_text(
        "kind: Secret\nmetadata: {name: i, namespace: y, labels: {1: a, b: c}}\n"
        "stringData: {k: v}\n"
    )
    noname = tree / "apps" / "noname.json"
    noname.write_text('{"kind": "Secret", "metadata": {"namespace": "y"}, "data": {"k": "eA=="}}')
    result = seal(tree, keys)
    assert result.code == 1
    assert_one_line_error(result)
    errors = sorted(result.err.splitlines())
    assert errors == sorted(
        [
            f"error: {b64bad}:1: illegal base64 data in data.k",
            f"error: {bad}:4: malformed YAML: found unexpected end of stream",
            f"error: {noname}:1: missing metadata.name in input Secret",
            f"error: {intkeys}:1: Secret has map keys that are not strings",
        ]
    )
    assert_no_leak(ALL_VALUES, result.out, result.err)
    assert not list(tree.rglob("*.sealed.*")) and not (tree / ".sealkit").exists()
    result = check(tree)
    assert result.code == 1 and "Traceback" not in result.err


def test_twins_are_never_sources_and_orphans_warn(tree: Path, keys: KeyPair) -> None:
    stray = tree / "apps" / "stray.sealed.yaml"
    stray.write_text("kind: Secret\nmetadata: {name: s, namespace: n2}\nstringData: {k: v}\n")
    result = seal(tree, keys)
    assert result.code == 0
    assert not (tree / "apps" / "stray.sealed.sealed.yaml").exists()
    assert f"warning: {stray}: its source holds no plaintext Secret" in result.err
    source = tree / "apps" / "db" / "db.yaml"
    source.write_text("kind: ConfigMap\n")
    result = seal(tree, keys)
    assert f"warning: {tree}/apps/db/db.sealed.yaml: its source holds no plaintext" in result.err
    assert check(tree).code == 0  # every remaining plaintext Secret has its twin


def test_exclude_and_sealkitignore(tree: Path, keys: KeyPair) -> None:
    result = seal(tree, keys, "--exclude", "list.json")
    assert result.code == 0 and not (tree / "apps" / "list.sealed.json").exists()
    (tree / ".sealkitignore").write_text("apps/db/\n")
    result = seal(tree, keys, "--force")
    assert "0 Secret(s) in 1 file(s)" not in result.err
    assert "2 Secret(s) in 1 file(s)" in result.err


def test_extra_or_reordered_twin_documents(tree: Path, keys: KeyPair) -> None:
    assert seal(tree, keys).code == 0
    twin = tree / "apps" / "db" / "db.sealed.yaml"
    a_doc, b_doc = load_all(twin)
    from sealkit.output import dump_all

    twin.write_text(dump_all([b_doc, a_doc], "yaml"))
    result = check(tree)
    assert result.code == 1
    assert result.out == f"{twin}: twin has other documents or another order than its source\n"
    result = seal(tree, keys)
    assert "0 sealed" in result.err and load_all(twin) == [a_doc, b_doc]
    # a person's comments in a twin with the right content are left alone
    twin.write_text("# reviewed\n" + twin.read_text())
    assert seal(tree, keys).out == "" and twin.read_text().startswith("# reviewed\n")


def test_progress_on_stderr_for_large_trees(
    tmp_path: Path, keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "big"
    root.mkdir()
    for i in range(120):
        (root / f"s{i:03}.yaml").write_text(
            f"kind: Secret\nmetadata: {{name: s{i}, namespace: ns1}}\nstringData: {{k: v{i}}}\n"
        )
    result = seal(root, keys, "-j", "2")
    assert result.code == 0
    progress = [line for line in result.err.splitlines() if line.startswith("sealing ")]
    assert progress[-1] == "sealing 120/120" and 2 <= len(progress) <= 11
    result = seal(root, keys, "-j", "1", "--force")
    progress = [line for line in result.err.splitlines() if line.startswith("sealing ")]
    assert progress[-1] == "sealing 120/120" and 2 <= len(progress) <= 11
    assert len(result.out.splitlines()) == 120
    assert "sealing" not in seal(root, keys, "--force", "--no-progress").err
    assert check(root).code == 0


def test_cert_errors_are_one_line(tree: Path, tmp_path: Path) -> None:
    result = run_cli(["seal-tree", str(tree), "--cert", str(tmp_path / "none.pem")])
    assert result.code == 1
    assert_one_line_error(result)
    (tmp_path / "junk.pem").write_text("junk")
    result = run_cli(["seal-tree", str(tree), "--cert", str(tmp_path / "junk.pem")])
    assert result.code == 1
    assert_one_line_error(result)
    result = run_cli(["seal-tree", str(tmp_path / "nodir"), "--cert", str(tmp_path / "x")])
    assert result.code == 1 and "not a directory" in result.err
    assert not list(tree.rglob("*.sealed.*"))


@pytest.mark.stack
def test_real_kubeseal_opens_twins(tree: Path, keys: KeyPair, tmp_path: Path) -> None:
    kubeseal = kubeseal_binary()
    assert seal(tree, keys).code == 0
    a_doc, _ = load_all(tree / "apps" / "db" / "db.sealed.yaml")
    one = tmp_path / "a.json"
    one.write_text(json.dumps(a_doc))
    opened = kubeseal_recovery_unseal(kubeseal, one, keys.key_secret, home=tmp_path)
    assert base64.b64decode(opened["data"]["password"]) == A_PASSWORD.encode()
    assert opened["type"] == "Opaque"
    # a single-document YAML twin, as written, opens too
    (tree / "apps" / "one.yaml").write_text(
        "kind: Secret\napiVersion: v1\nmetadata: {name: one, namespace: prod}\n"
        "stringData: {k: kubeseal-reads-this}\n"
    )
    assert seal(tree, keys).code == 0
    opened = kubeseal_recovery_unseal(
        kubeseal, tree / "apps" / "one.sealed.yaml", keys.key_secret, home=tmp_path
    )
    assert base64.b64decode(opened["data"]["k"]) == b"kubeseal-reads-this"


def test_forked_workers_match_single_process(
    tmp_path: Path, keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sealkit.forkpool

    monkeypatch.setattr(sealkit.forkpool, "MIN_PER_WORKER", 4)  # 3 workers for 14 files
    roots = []
    for jobs in ("1", "3"):
        root = tmp_path / f"j{jobs}"
        root.mkdir()
        for i in range(14):
            sub = root / f"d{i % 3}"
            sub.mkdir(exist_ok=True)
            (sub / f"s{i:03}.yaml").write_text(
                f"kind: Secret\nmetadata: {{name: s{i}, namespace: ns1}}\nstringData: {{k: v{i}}}\n"
            )
        (root / "d1" / "bad.yaml").write_text("kind: Secret\nmetadata: {name: [\n")
        result = seal(root, keys, "-j", jobs)
        assert result.code == 1 and result.err.count("error: ") == 1  # found by the workers too
        assert not list(root.rglob("*.sealed.*"))  # staged twins discarded too
        assert not list(root.rglob("*.tmp"))
        (root / "d1" / "bad.yaml").unlink()
        result = seal(root, keys, "-j", jobs, "--digest-key-file", str(tmp_path / "dk"))
        assert result.code == 0, result.err
        roots.append((root, result.out.replace(f"{root}/", "")))
    (r1, out1), (r3, out3) = roots
    assert out1 == out3 and len(out1.splitlines()) == 14
    for twin in r1.rglob("*.sealed.yaml"):
        (doc1,) = load_all(twin)
        (doc3,) = load_all(r3 / twin.relative_to(r1))
        assert doc1["metadata"] == doc3["metadata"]  # same digests and fingerprints
        assert values_of(doc3, keys) == values_of(doc1, keys)
    assert check(r3, "-j", "3", "--digest-key-file", str(tmp_path / "dk")).code == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_without_cert_fetches_from_the_controller(
    tree: Path, keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --cert: the certificate comes from the controller, as for the main command.

    Here through ``--controller-url`` (our real HTTP API in-process, serving the test key);
    the apiserver service-proxy path is the main command's, shared via `sealkit.cli._common`.
    """
    pytest.importorskip("prometheus_client")  # the controller extra
    yaml_key = yaml.safe_load(keys.key_secret.read_text())
    yaml_key["metadata"]["name"] = "sealed-secrets-key-test"
    from controller.http_api import serve_api
    from controller.keyring import KeyRing, entry_from_secret

    ring = KeyRing()
    ring.add(entry_from_secret(yaml_key))
    handle = serve_api("127.0.0.1:0", keys=ring)
    try:
        monkeypatch.setenv("SEALKIT_CONTROLLER_URL", handle.url)
        result = run_cli(["seal-tree", str(tree), "-j", "1"])
        assert result.code == 0, result.err
        a_doc = load_all(tree / "apps" / "db" / "db.sealed.yaml")[0]
        assert a_doc["metadata"]["annotations"][CERT_ANNOTATION] == keys.fingerprint
        assert values_of(a_doc, keys)["password"] == A_PASSWORD.encode()
        result = run_cli(
            ["set", str(tree / "apps" / "db" / "db.sealed.yaml"), "extra", "--name", "a"],
            stdin=b"from-controller",
        )
        assert result.code == 0, result.err
        a_doc = load_all(tree / "apps" / "db" / "db.sealed.yaml")[0]
        assert values_of(a_doc, keys)["extra"] == b"from-controller"
    finally:
        handle.shutdown()
    result = run_cli(["seal-tree", str(tree), "--force", "-j", "1"])  # controller gone
    assert result.code == 1
    assert_one_line_error(result)
    assert "cannot fetch certificate" in result.err


@pytest.mark.parametrize("jobs", [1, 2])
def test_worker_crash_leaves_no_staged_files(
    tmp_path: Path, keys: KeyPair, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sealkit.tree as tree_mod

    root = tmp_path / "t"
    root.mkdir()
    for i in range(24):
        (root / f"s{i:03}.yaml").write_text(
            f"kind: Secret\nmetadata: {{name: s{i}, namespace: ns1}}\nstringData: {{k: v}}\n"
        )
    real = tree_mod.seal_unit

    def flaky(unit, *args, **kwargs):  # type: ignore[no-untyped-def]
        if unit.name == "s21":
            raise RuntimeError("boom")
        return real(unit, *args, **kwargs)

    monkeypatch.setattr(tree_mod, "seal_unit", flaky)
    with pytest.raises(RuntimeError):
        tree_mod.run_tree(
            root,
            tree_mod.TreeOptions(),
            key=DigestKey(b"k" * 32),
            fingerprint=keys.fingerprint,
            public_key=keys.public_key(),
            jobs=jobs,
            _min_per_worker=4,
        )
    assert sorted(p.name for p in root.iterdir()) == [f"s{i:03}.yaml" for i in range(24)]
    monkeypatch.setattr("sealkit.forkpool.MIN_PER_WORKER", 4)
    result = run_cli(["seal-tree", str(root), "--cert", str(keys.cert), "-j", str(jobs)])
    assert result.code == 1 and "internal error (RuntimeError)" in result.err
    assert len(list(root.iterdir())) == 24


def _pids(state: list[int], chunk: list[int]) -> list[tuple[int, int]]:
    import os

    return [(state[i], os.getpid()) for i in chunk]


def test_fork_pool_passes_state_explicitly_and_keeps_none() -> None:
    import os

    from sealkit import forkpool

    items = list(range(40))
    chunks = forkpool.imap_chunks(_pids, items, items, jobs=2, min_per_worker=2, chunk_size=3)
    forked = [r for chunk in chunks for r in chunk]
    assert [i for i, _ in forked] == items  # in order
    assert {pid for _, pid in forked} - {os.getpid()}  # really ran in children
    assert not forkpool._INHERITED  # the state lived only while the pool ran
    inline = [r for c in forkpool.imap_chunks(_pids, items, items, jobs=2) for r in c]
    assert {pid for _, pid in inline} == {os.getpid()}  # too few to fork
