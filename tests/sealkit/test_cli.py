"""The `sealkit` console script with kubeseal's flags: every flag and every error path.

Runs the installed script in a subprocess so exit codes, stderr lines and the absence of
tracebacks are what a user sees. Offline throughout (``--cert``), except the controller
tests, which run the controller's real HTTP API in-process (``--controller-url``).
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from pathlib import Path

import pytest
import yaml

from tests.sealkit.conftest import assert_one_line_error, run_sealkit

SECRET_YAML = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
type: Opaque
data:
  password: aHVudGVyMg==
stringData:
  user: admin
"""
SECRET_VALUE = "hunter2"  # must never appear in any error output


def _docs(text: str) -> list[dict]:
    from sealkit.documents import load_documents

    return load_documents(text)


def _open(sealed: dict, private_key) -> dict[str, bytes]:
    from sealkit.model import unseal_sealed_secret

    out = unseal_sealed_secret(sealed, [private_key])
    return {k: base64.b64decode(v) for k, v in out.get("data", {}).items()}


# --- sealing: input and output ----------------------------------------------------------------
def test_stdin_to_stdout_json_default(cert_path, private_key) -> None:
    proc = run_sealkit("--cert", cert_path, input=SECRET_YAML)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{\n  "kind": "SealedSecret",\n  "apiVersion": "bitnami.com/')
    (sealed,) = _docs(proc.stdout)
    assert _open(sealed, private_key) == {"password": b"hunter2", "user": b"admin"}


@pytest.mark.parametrize("fmt", ["yaml", "YAML", "Yaml"])
def test_format_yaml_case_insensitive(cert_path, fmt) -> None:
    proc = run_sealkit("--cert", cert_path, "-o", fmt, input=SECRET_YAML)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("---\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n")


def test_secret_file_flag_and_multi_document_yaml(cert_path, private_key, tmp_path) -> None:
    second = SECRET_YAML.replace("name: db", "name: db2")
    src = tmp_path / "in.yaml"
    src.write_text(SECRET_YAML + "---\n" + second + "---\n")
    proc = run_sealkit("--cert", cert_path, "-f", str(src), "--format", "yaml")
    docs = _docs(proc.stdout)
    assert [d["metadata"]["name"] for d in docs] == ["db", "db2"]
    assert proc.stdout.count("---\n") == 2
    assert _open(docs[1], private_key)["user"] == b"admin"


def test_concatenated_json_input(cert_path) -> None:
    one = yaml.safe_load(SECRET_YAML)
    two = dict(one, metadata={"name": "db2", "namespace": "prod"})
    proc = run_sealkit("--cert", cert_path, input=json.dumps(one) + json.dumps(two))
    assert proc.returncode == 0, proc.stderr
    assert [d["metadata"]["name"] for d in _docs(proc.stdout)] == ["db", "db2"]


@pytest.mark.parametrize(
    ("target", "expect_yaml"),
    [("out.yaml", True), ("out.yml", True), ("out.json", False), ("out", False)],
)
def test_write_flag_and_extension(cert_path, tmp_path, target, expect_yaml) -> None:
    out = tmp_path / target
    proc = run_sealkit("--cert", cert_path, "-w", str(out), input=SECRET_YAML)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert out.read_text().startswith("---\n" if expect_yaml else "{")


def test_write_is_all_or_nothing(cert_path, tmp_path) -> None:
    out = tmp_path / "out.yaml"
    out.write_text("previous content\n")
    bad = (
        SECRET_YAML + "---\napiVersion: v1\nkind: Secret\nmetadata: {namespace: x}\n"
        "data: {a: YQ==}\n"
    )
    proc = run_sealkit("--cert", cert_path, "-w", str(out), input=bad)
    assert_one_line_error(proc, 1, "missing metadata.name in input Secret")
    assert out.read_text() == "previous content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]  # no temp file left behind
    new = tmp_path / "new.yaml"
    assert_one_line_error(run_sealkit("--cert", cert_path, "-w", str(new), input=bad), 1)
    assert not new.exists()


# --- sealing: scope, names, namespaces --------------------------------------------------------
@pytest.mark.parametrize("scope", ["strict", "namespace-wide", "cluster-wide"])
def test_scope_flag(cert_path, private_key, scope) -> None:
    proc = run_sealkit("--cert", cert_path, "--scope", scope, input=SECRET_YAML)
    (sealed,) = _docs(proc.stdout)
    annotations = sealed["metadata"].get("annotations", {})
    if scope == "strict":
        assert annotations == {}
    else:
        assert annotations == {f"sealedsecrets.bitnami.com/{scope}": "true"}
    assert _open(sealed, private_key)["password"] == b"hunter2"


def test_allow_empty_data(cert_path) -> None:
    empty = "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\n"
    assert_one_line_error(
        run_sealkit("--cert", cert_path, input=empty),
        1,
        "secret.data is empty in input Secret",
        "--allow-empty-data",
    )
    proc = run_sealkit("--cert", cert_path, "--allow-empty-data", input=empty)
    assert proc.returncode == 0
    assert _docs(proc.stdout)[0]["spec"]["encryptedData"] == {}


def test_name_flag_overrides(cert_path, private_key) -> None:
    proc = run_sealkit("--cert", cert_path, "--name", "renamed", input=SECRET_YAML)
    (sealed,) = _docs(proc.stdout)
    assert sealed["metadata"]["name"] == "renamed"
    assert _open(sealed, private_key)["user"] == b"admin"


def test_namespace_flag_fills_missing_namespace(cert_path) -> None:
    no_ns = SECRET_YAML.replace("  namespace: prod\n", "")
    proc = run_sealkit("--cert", cert_path, "-n", "staging", input=no_ns)
    assert _docs(proc.stdout)[0]["metadata"]["namespace"] == "staging"


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "a",
                "contexts": [
                    {"name": "a", "context": {"cluster": "c", "user": "u", "namespace": "ns-a"}},
                    {"name": "b", "context": {"cluster": "c", "user": "u", "namespace": "ns-b"}},
                    {"name": "c", "context": {"cluster": "c", "user": "u"}},
                ],
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [([], "ns-a"), (["--context", "b"], "ns-b"), (["--context", "c"], "default")],
)
def test_namespace_from_kubeconfig_context(cert_path, tmp_path, extra, expected) -> None:
    no_ns = SECRET_YAML.replace("  namespace: prod\n", "")
    kubeconfig = _kubeconfig(tmp_path)
    proc = run_sealkit("--cert", cert_path, "--kubeconfig", str(kubeconfig), *extra, input=no_ns)
    assert proc.returncode == 0, proc.stderr
    assert _docs(proc.stdout)[0]["metadata"]["namespace"] == expected
    via_env = run_sealkit(
        "--cert", cert_path, *extra, input=no_ns, env={"KUBECONFIG": str(kubeconfig)}
    )
    assert _docs(via_env.stdout)[0]["metadata"]["namespace"] == expected


# --- every flag through its SEALED_SECRETS_* variable ------------------------------------------
def test_env_vars(cert_path, private_key, tmp_path) -> None:
    src = tmp_path / "in.yaml"
    src.write_text(SECRET_YAML.replace("  namespace: prod\n", ""))
    out = tmp_path / "out"
    proc = run_sealkit(
        env={
            "SEALED_SECRETS_CERT": cert_path,
            "SEALED_SECRETS_SECRET_FILE": str(src),
            "SEALED_SECRETS_SEALED_SECRET_FILE": str(out),
            "SEALED_SECRETS_FORMAT": "yaml",
            "SEALED_SECRETS_SCOPE": "namespace-wide",
            "SEALED_SECRETS_NAMESPACE": "env-ns",
            "SEALED_SECRETS_NAME": "env-name",
        }
    )
    assert proc.returncode == 0, proc.stderr
    (sealed,) = _docs(out.read_text())
    assert out.read_text().startswith("---\n")
    assert sealed["metadata"]["name"] == "env-name"
    assert sealed["metadata"]["namespace"] == "env-ns"
    assert sealed["metadata"]["annotations"] == {"sealedsecrets.bitnami.com/namespace-wide": "true"}


def test_env_boolean_flags(cert_path) -> None:
    empty = "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\n"
    proc = run_sealkit(
        input=empty,
        env={"SEALED_SECRETS_CERT": cert_path, "SEALED_SECRETS_ALLOW_EMPTY_DATA": "true"},
    )
    assert proc.returncode == 0, proc.stderr


def test_command_line_wins_over_env(cert_path) -> None:
    proc = run_sealkit(
        "-o",
        "json",
        "--cert",
        cert_path,
        input=SECRET_YAML,
        env={"SEALED_SECRETS_FORMAT": "yaml", "SEALED_SECRETS_CERT": "/nope"},
    )
    assert proc.returncode == 0 and proc.stdout.startswith("{")


# --- --raw --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "scope", "namespace", "name"),
    [
        (["--scope", "strict", "--name", "db", "-n", "prod"], "strict", "prod", "db"),
        (["--scope", "namespace-wide", "-n", "prod"], "namespace-wide", "prod", ""),
        (["--scope", "cluster-wide"], "cluster-wide", "", ""),
    ],
)
def test_raw_from_stdin_and_file(cert_path, private_key, tmp_path, args, scope, namespace, name):
    from sealkit.crypto import b64decode, unseal
    from sealkit.scopes import Scope, label_for

    label = label_for(Scope(scope), namespace, name)
    proc = run_sealkit("--cert", cert_path, "--raw", *args, input=b"raw\x00value")
    assert proc.returncode == 0, proc.stderr
    assert not proc.stdout.endswith("\n")
    assert unseal(b64decode(proc.stdout), [private_key], label) == b"raw\x00value"
    value_file = tmp_path / "v"
    value_file.write_bytes(b"from file")
    proc = run_sealkit("--cert", cert_path, "--raw", *args, "--from-file", f"key={value_file}")
    assert unseal(b64decode(proc.stdout), [private_key], label) == b"from file"


def test_raw_errors(cert_path, tmp_path) -> None:
    value = tmp_path / "v"
    value.write_text("x")
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    base = ["--cert", cert_path, "--kubeconfig", str(kubeconfig)]
    # Runtime errors in kubeseal: exit 1, like every error but a flag parse error.
    assert_one_line_error(
        run_sealkit(*base, "--raw", "-n", "x", "--from-file", str(value)),
        1,
        "must provide the --name flag with --raw and --scope strict",
    )
    assert_one_line_error(
        run_sealkit(*base, "--raw", "--scope", "cluster-wide", "--from-file", f"{value},{value}"),
        1,
        "must provide only one --from-file",
    )
    assert_one_line_error(
        run_sealkit(*base, "--from-file", str(value)), 1, "--from-file requires --raw"
    )
    no_kubeconfig = run_sealkit(
        "--cert",
        cert_path,
        "--kubeconfig",
        str(tmp_path / "none"),
        "--raw",
        "--scope",
        "namespace-wide",
        "--from-file",
        str(value),
    )
    assert_one_line_error(no_kubeconfig, 1, "no such file or directory")


# --- --merge-into -------------------------------------------------------------------------
MERGE_TARGET = """\
# Managed in Git: keep this comment.
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  namespace: prod   # inline comment
  name: db
spec:
  template:
    metadata:
      name: db
      namespace: prod
      labels:
        keep: label
  encryptedData:
    zzz: {zzz}
"""


def _target(public_key, scope="strict") -> str:
    from sealkit.model import seal_value
    from sealkit.scopes import Scope

    blob = seal_value(b"old", public_key, scope=Scope(scope), namespace="prod", name="db")
    return MERGE_TARGET.replace("{zzz}", blob)


def test_merge_into_yaml_keeps_format_comments_and_order(
    cert_path, public_key, private_key, tmp_path
) -> None:
    target = tmp_path / "sealed.yaml"
    target.write_text(_target(public_key))
    update = (
        SECRET_YAML.replace("name: db", "name: ignored")
        .replace("namespace: prod", "namespace: other")
        .replace("type: Opaque", "type: Opaque\n  labels: {new: label}")
    )
    update = update.replace(
        "  name: ignored\n  namespace: other\ntype: Opaque\n  labels",
        "  name: ignored\n  namespace: other\n  labels",
    )
    proc = run_sealkit("--cert", cert_path, "--merge-into", str(target), input=update)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    text = target.read_text()
    assert text.startswith("# Managed in Git: keep this comment.\napiVersion:")
    assert "namespace: prod   # inline comment\n  name: db\n" in text
    assert text.index("zzz:") < text.index("password:")  # existing order kept, new keys appended
    (merged,) = _docs(text)
    assert merged["spec"]["template"]["metadata"]["labels"] == {"keep": "label", "new": "label"}
    assert _open(merged, private_key) == {"zzz": b"old", "password": b"hunter2", "user": b"admin"}


def test_merge_into_json_stays_json(cert_path, public_key, private_key, tmp_path) -> None:
    target = tmp_path / "sealed.json"
    target.write_text(json.dumps(yaml.safe_load(_target(public_key)), indent=4) + "\n")
    proc = run_sealkit(
        "--cert", cert_path, "--merge-into", str(target), "-o", "yaml", input=SECRET_YAML
    )
    assert proc.returncode == 0, proc.stderr
    text = target.read_text()
    assert text.startswith('{\n    "apiVersion"')
    assert _open(json.loads(text), private_key)["password"] == b"hunter2"


def test_merge_into_keeps_the_files_scope(cert_path, public_key, private_key, tmp_path) -> None:
    target = tmp_path / "sealed.yaml"
    text = _target(public_key, "namespace-wide").replace(
        "  name: db\nspec:",
        '  name: db\n  annotations:\n    sealedsecrets.bitnami.com/namespace-wide: "true"\nspec:',
    )
    target.write_text(text)
    proc = run_sealkit("--cert", cert_path, "--merge-into", str(target), input=SECRET_YAML)
    assert proc.returncode == 0, proc.stderr
    (merged,) = _docs(target.read_text())
    assert _open(merged, private_key)["password"] == b"hunter2"


def test_merge_into_creates_missing_maps(cert_path, private_key, tmp_path) -> None:
    target = tmp_path / "bare.yaml"
    target.write_text(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n"
        "metadata: {name: db, namespace: prod}\nspec:\n  encryptedData:\n"
    )
    proc = run_sealkit("--cert", cert_path, "--merge-into", str(target), input=SECRET_YAML)
    assert proc.returncode == 0, proc.stderr
    assert _open(_docs(target.read_text())[0], private_key)["user"] == b"admin"


def test_merge_into_errors_leave_file_untouched(cert_path, public_key, tmp_path) -> None:
    target = tmp_path / "sealed.yaml"
    original = _target(public_key)
    target.write_text(original)
    empty = "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: n}\n"
    assert_one_line_error(
        run_sealkit("--cert", cert_path, "--merge-into", str(target), input=empty),
        1,
        "secret.data is empty",
    )
    assert_one_line_error(
        run_sealkit(
            "--cert",
            cert_path,
            "--merge-into",
            str(target),
            "--scope",
            "cluster-wide",
            input=SECRET_YAML,
        ),
        1,
        "scope mismatch",
    )
    assert target.read_text() == original
    not_sealed = tmp_path / "plain.yaml"
    not_sealed.write_text(SECRET_YAML)
    assert_one_line_error(
        run_sealkit("--cert", cert_path, "--merge-into", str(not_sealed), input=SECRET_YAML),
        1,
        "exactly one SealedSecret",
    )
    assert_one_line_error(
        run_sealkit(
            "--cert", cert_path, "--merge-into", str(tmp_path / "missing.yaml"), input=SECRET_YAML
        ),
        1,
        "cannot read",
    )


# --- --recovery-unseal --------------------------------------------------------------------------
def _sealed_file(cert_path, tmp_path, fmt="json") -> Path:
    proc = run_sealkit("--cert", cert_path, "-o", fmt, input=SECRET_YAML)
    path = tmp_path / f"sealed.{fmt}"
    path.write_text(proc.stdout)
    return path


def test_recovery_unseal_with_pem_key(cert_path, key_path, tmp_path) -> None:
    sealed = _sealed_file(cert_path, tmp_path)
    proc = run_sealkit("--recovery-unseal", "--recovery-private-key", key_path, "-f", str(sealed))
    assert proc.returncode == 0, proc.stderr
    secret = json.loads(proc.stdout)
    assert secret["kind"] == "Secret"
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"
    yaml_out = run_sealkit(
        "--recovery-unseal",
        "--recovery-private-key",
        key_path,
        "-o",
        "yaml",
        input=sealed.read_text(),
    )
    assert yaml_out.stdout.startswith("---\napiVersion: v1\n")


def test_recovery_unseal_key_list_comma_and_repeat(
    cert_path, private_key, other_private_key, tmp_path
) -> None:
    from cryptography import x509

    from sealkit.keys import key_secret_manifest, private_key_pem

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    listing = tmp_path / "keys.yaml"
    listing.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    key_secret_manifest(other_private_key, cert),
                    key_secret_manifest(private_key, cert),
                ],
            }
        )
    )
    other = tmp_path / "other.pem"
    other.write_bytes(private_key_pem(other_private_key))
    sealed = _sealed_file(cert_path, tmp_path, "yaml")
    for args in (
        ["--recovery-private-key", str(listing)],
        ["--recovery-private-key", f"{other},{listing}"],
        ["--recovery-private-key", str(other), "--recovery-private-key", str(listing)],
    ):
        proc = run_sealkit("--recovery-unseal", *args, "-f", str(sealed))
        assert proc.returncode == 0, (args, proc.stderr)
    wrong = run_sealkit(
        "--recovery-unseal", "--recovery-private-key", str(other), "-f", str(sealed)
    )
    assert_one_line_error(wrong, 1, "no key could decrypt secret (password, user)")


def test_recovery_unseal_errors(cert_path, key_path, tmp_path) -> None:
    sealed = _sealed_file(cert_path, tmp_path)
    assert_one_line_error(
        run_sealkit("--recovery-unseal", "-f", str(sealed)), 1, "no key could decrypt secret ("
    )
    assert_one_line_error(
        run_sealkit("--recovery-unseal", "--recovery-private-key", key_path, input=SECRET_YAML),
        1,
        'not a SealedSecret (kind "Secret")',
    )
    assert_one_line_error(
        run_sealkit("--recovery-unseal", "--recovery-private-key", cert_path, "-f", str(sealed)),
        1,
        "no PEM private key found",
    )


def test_recovery_private_key_ignored_without_recovery_unseal(cert_path, key_path) -> None:
    proc = run_sealkit("--cert", cert_path, "--recovery-private-key", key_path, input=SECRET_YAML)
    assert proc.returncode == 0
    assert proc.stderr == ""  # kubeseal warns only when stderr is a terminal


# --- certificates -----------------------------------------------------------------------------
@pytest.fixture
def cert_server(cert_path):
    """A static file server for `--cert http://` (serves the test cert, 404 elsewhere)."""
    pem = Path(cert_path).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/cert.pem":
                self.send_response(200)
                self.send_header("Content-Type", "application/x-pem-file")
                self.end_headers()
                self.wfile.write(pem)
            else:
                self.send_error(404)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cert_sources(cert_path, cert_server, private_key) -> None:
    for cert in (cert_path, f"file://{cert_path}", f"{cert_server}/cert.pem"):
        proc = run_sealkit(
            "--cert", cert, input=SECRET_YAML, env={"NO_PROXY": "*", "no_proxy": "*"}
        )
        assert proc.returncode == 0, (cert, proc.stderr)
        assert _open(_docs(proc.stdout)[0], private_key)["password"] == b"hunter2"


def test_fetch_cert(cert_path, cert_server) -> None:
    pem = Path(cert_path).read_text()
    assert run_sealkit("--fetch-cert", "--cert", cert_path).stdout == pem
    fetched = run_sealkit(
        "--fetch-cert", "--cert", f"{cert_server}/cert.pem", env={"NO_PROXY": "*", "no_proxy": "*"}
    )
    assert fetched.stdout == pem


def test_cert_errors(tmp_path, cert_server, key_path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def cert(key, days: int) -> Path:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
        end = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        c = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(end - dt.timedelta(days=400))
            .not_valid_after(end)
            .sign(key, hashes.SHA256())
        )
        path = tmp_path / f"c{days}{type(key).__name__}.pem"
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return path

    expired = cert(rsa.generate_private_key(65537, 2048), -3)
    assert_one_line_error(
        run_sealkit("--cert", str(expired), input=SECRET_YAML),
        1,
        "failed to encrypt using an expired certificate on",
    )
    non_rsa = cert(ec.generate_private_key(ec.SECP256R1()), 30)
    assert_one_line_error(
        run_sealkit("--cert", str(non_rsa), input=SECRET_YAML),
        1,
        "expected RSA public key but found EC key",
    )
    assert_one_line_error(
        run_sealkit("--cert", key_path, input=SECRET_YAML),
        1,
        "does not contain any valid RSA or ECDSA certificates",
    )
    assert_one_line_error(
        run_sealkit("--cert", str(tmp_path / "nope.pem"), input=SECRET_YAML),
        1,
        "nope.pem: no such file or directory",
    )
    env = {"NO_PROXY": "*", "no_proxy": "*"}
    assert_one_line_error(
        run_sealkit("--cert", f"{cert_server}/missing.pem", input=SECRET_YAML, env=env),
        1,
        f'cannot fetch "{cert_server}/missing.pem": 404',
    )
    assert_one_line_error(
        run_sealkit("--cert", "http://127.0.0.1:1/cert.pem", input=SECRET_YAML, env=env),
        1,
        'cannot fetch "http://127.0.0.1:1/cert.pem"',
    )


# --- input errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\ndata: {x: y}\n",
            'not a v1 Secret (kind "ConfigMap")',
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {namespace: b}\ndata: {x: aHVudGVyMg==}\n",
            "missing metadata.name in input Secret",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  namespace: b\ndata: [hunter2\n",
            "malformed YAML in stdin at line",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\n"
            "data: {password: 'hunter2 not base64!'}\n",
            "illegal base64 data in data.password",
        ),
        ("", "no secrets found"),
        ("\xff\xfe".encode("latin-1").decode("latin-1"), ""),
    ],
)
def test_input_errors(cert_path, text, needle) -> None:
    proc = run_sealkit("--cert", cert_path, input=text.encode("latin-1"))
    assert_one_line_error(proc, 1, needle)
    assert SECRET_VALUE not in proc.stderr


def test_missing_namespace_without_kubeconfig(cert_path, tmp_path) -> None:
    no_ns = SECRET_YAML.replace("  namespace: prod\n", "")
    proc = run_sealkit("--cert", cert_path, "--kubeconfig", str(tmp_path / "none"), input=no_ns)
    assert_one_line_error(proc, 1, "secret must declare a namespace")  # as kubeseal


def test_namespace_mismatch(cert_path) -> None:
    proc = run_sealkit("--cert", cert_path, "-n", "other", input=SECRET_YAML)
    assert_one_line_error(
        proc, 1, 'namespace mismatch: input secret is in namespace "prod" but "other" was specified'
    )


def test_missing_input_file(cert_path, tmp_path) -> None:
    assert_one_line_error(
        run_sealkit("--cert", cert_path, "-f", str(tmp_path / "x.yaml")),
        1,
        "Could not read file specified with --secret-file",
    )


# --- usage errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--scope", "cluster"],
            'invalid argument "cluster" for "--scope" flag: must be one of: '
            "strict, namespace-wide, cluster-wide",
        ),
        (["--bogus"], "No such option"),
        (["--cert"], "requires an argument"),
    ],
)
def test_usage_errors_exit_2(cert_path, args, needle) -> None:
    proc = run_sealkit(*args, input=SECRET_YAML)
    assert_one_line_error(proc, 2, needle)


def test_version_and_help() -> None:
    assert run_sealkit("--version").stdout == "kubeseal version: v0.1.0 (sealkit)\n"
    helptext = run_sealkit("--help").stdout
    for flag in (
        "--cert",
        "--fetch-cert",
        "--merge-into",
        "--re-encrypt",
        "--recovery-unseal",
        "--recovery-private-key",
        "--controller-namespace",
        "--kubeconfig",
        "-n,",
    ):
        assert flag in helptext


def test_debug_shows_traceback_only_when_asked(tmp_path, cert_path) -> None:
    proc = run_sealkit("--cert", cert_path, "--debug", "-n", "other", input=SECRET_YAML)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.rstrip().endswith('but "other" was specified')


def test_no_secret_value_in_any_error(cert_path, tmp_path) -> None:
    """Every failing invocation on a Secret holding a known value keeps the value out of stderr."""
    leaky = (
        SECRET_YAML.replace("aHVudGVyMg==", base64.b64encode(b"hunter2").decode())
        + "  other: 'hunter2 {'\n"
    )
    for args in (
        ["-n", "x"],
        ["--scope", "bad"],
        ["--raw"],
        ["--validate"],
        ["--recovery-unseal", "--recovery-private-key", cert_path],
        ["-o", "hunter2"],
    ):
        proc = run_sealkit(
            "--cert", cert_path, "--controller-url", "http://127.0.0.1:1", *args, input=leaky
        )
        assert proc.returncode != 0
        assert "aHVudGVyMg" not in proc.stderr
        if "-o" not in args:  # the -o case echoes the user's own flag value, not input
            assert SECRET_VALUE not in proc.stderr


def test_subcommand_dispatch_does_not_break_kubeseal_flags(cert_path, tmp_path) -> None:
    """`sealkit -f scan` means 'read the file called scan', not the scan command."""
    scan_file = tmp_path / "scan"
    scan_file.write_text(SECRET_YAML)
    proc = run_sealkit("--cert", cert_path, "-f", "scan", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _docs(proc.stdout)[0]["kind"] == "SealedSecret"


# --- through a controller: --validate, --re-encrypt, --fetch-cert ------------------------------
@pytest.fixture
def controller(private_key, other_private_key, tmp_path):
    """The controller's real HTTP API (controller.http_api) serving two keys, newest = other."""
    pytest.importorskip("controller.http_api")
    from cryptography import x509

    from controller.http_api import ApiOptions, serve_api
    from controller.keyring import KeyRing, entry_from_secret
    from sealkit.keys import generate_key_and_cert, key_secret_manifest

    ring = KeyRing()
    old = x509.load_pem_x509_certificate(
        (Path(__file__).parent / "vectors" / "test-cert.pem").read_bytes()
    )
    ring.add(entry_from_secret(key_secret_manifest(private_key, old, name="old")))
    newest_key, newest_cert = generate_key_and_cert(2048)
    ring.add(entry_from_secret(key_secret_manifest(newest_key, newest_cert, name="new")))
    api = serve_api(
        "127.0.0.1:0", keys=ring, options=ApiOptions(rate_limit=1000, rate_limit_burst=1000)
    )
    try:
        yield {
            "url": f"http://127.0.0.1:{api.port}",
            "newest_key": newest_key,
            "newest_cert": newest_cert,
        }
    finally:
        api.shutdown()


def _ctl(controller) -> dict[str, str]:
    return {"SEALKIT_CONTROLLER_URL": controller["url"], "NO_PROXY": "*", "no_proxy": "*"}


def test_validate_ok_and_409(controller, cert_path, other_private_key, tmp_path) -> None:
    sealed = _sealed_file(cert_path, tmp_path)
    proc = run_sealkit("--validate", "-f", str(sealed), env=_ctl(controller))
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    tampered = json.loads(sealed.read_text())
    tampered["metadata"]["name"] = "renamed"  # strict: the label changes, nothing opens
    proc = run_sealkit("--validate", input=json.dumps(tampered), env=_ctl(controller))
    assert_one_line_error(proc, 1, "unable to decrypt sealed secret: renamed")


def test_re_encrypt_to_stdout_and_in_place(controller, cert_path, key_path, tmp_path) -> None:
    from sealkit.model import unseal_sealed_secret

    sealed = _sealed_file(cert_path, tmp_path, "yaml")
    proc = run_sealkit("--re-encrypt", input=sealed.read_text(), env=_ctl(controller))
    assert proc.returncode == 0, proc.stderr
    (rotated,) = _docs(proc.stdout)
    assert rotated["kind"] == "SealedSecret" and "creationTimestamp" not in rotated["metadata"]
    out = unseal_sealed_secret(rotated, [controller["newest_key"]])
    assert base64.b64decode(out["data"]["password"]) == b"hunter2"
    # --rotate is the deprecated alias; with -f and no -w it rewrites the file, format kept
    before = sealed.read_text()
    proc = run_sealkit("--rotate", "-f", str(sealed), env=_ctl(controller))
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    after = sealed.read_text()
    assert after != before and after.startswith("---\n")
    unseal_sealed_secret(_docs(after)[0], [controller["newest_key"]])


def test_fetch_cert_from_controller(controller) -> None:
    from cryptography.hazmat.primitives import serialization

    proc = run_sealkit("--fetch-cert", env=_ctl(controller))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.encode() == controller["newest_cert"].public_bytes(
        serialization.Encoding.PEM
    )


def test_seal_with_controller_cert(controller, private_key) -> None:
    from sealkit.model import unseal_sealed_secret

    proc = run_sealkit(input=SECRET_YAML, env=_ctl(controller))
    assert proc.returncode == 0, proc.stderr
    unseal_sealed_secret(_docs(proc.stdout)[0], [controller["newest_key"]])


def test_unreachable_controller(cert_path, tmp_path) -> None:
    sealed = _sealed_file(cert_path, tmp_path)
    env = {"SEALKIT_CONTROLLER_URL": "http://127.0.0.1:1", "NO_PROXY": "*"}
    for args in (
        ["--validate", "-f", str(sealed)],
        ["--re-encrypt", "-f", str(sealed)],
        ["--fetch-cert"],
    ):
        proc = run_sealkit(*args, env=env)
        assert_one_line_error(proc, 1, "127.0.0.1:1")
    assert json.loads(sealed.read_text())  # --re-encrypt failure left the file alone
