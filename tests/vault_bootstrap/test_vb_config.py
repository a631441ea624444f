"""Bad config of every kind -> one line naming the field path, exit 1, nothing on stdout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vault_bootstrap import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "examples" / "vault-bootstrap" / "chapter.yaml"

K8S = """
auth:
  kubernetes:
    type: kubernetes
    config:
      kubernetes_host: https://k
    roles:
      app:
        bound_service_account_names: [app]
        bound_service_account_namespaces: [default]
"""

DB = """
secrets:
  database:
    type: database
    connections:
      pg:
        connection_url: "postgresql://{{username}}:{{password}}@h:5432/db"
        username: u
        password: env:PGPASSWORD
    roles:
      app:
        db_name: pg
        creation_statements: CREATE ROLE x
"""

BAD = [
    ("unknown top-level key", "nonsense: 1\n", "nonsense: unknown key"),
    (
        "unknown nested key",
        K8S + "        colour: blue\n",
        "auth.kubernetes.roles.app.colour: unknown key",
    ),
    (
        "bad duration",
        K8S + "        token_ttl: 1x\n",
        "auth.kubernetes.roles.app.token_ttl: invalid duration",
    ),
    (
        "wrong type",
        K8S + "        token_policies: reader\n",
        "auth.kubernetes.roles.app.token_policies:",
    ),
    (
        "missing required",
        "auth:\n  kubernetes:\n    type: kubernetes\n",
        "auth.kubernetes.config: required key missing",
    ),
    (
        "empty bound names",
        K8S.replace("[app]", "[]"),
        "auth.kubernetes.roles.app.bound_service_account_names:",
    ),
    ("unknown auth type", K8S.replace("type: kubernetes", "type: ldap"), "auth.kubernetes.type:"),
    ("unknown engine type", "secrets:\n  x:\n    type: nope\n", "secrets.x: unknown type"),
    ("engine without type", "secrets:\n  x: {}\n", "secrets.x: missing 'type'"),
    (
        "literal password",
        DB.replace("env:PGPASSWORD", "hunter2-literal"),
        "secrets.database.connections.pg.password: literal secret values are not allowed",
    ),
    (
        "literal kv value",
        "kv:\n  secret/a:\n    data:\n      k: plain-value\n",
        "kv.secret/a.data.k: literal secret values are not allowed",
    ),
    (
        "bad env ref",
        "kv:\n  secret/a:\n    data:\n      k: env:1BAD\n",
        "kv.secret/a.data.k: env reference needs a variable name",
    ),
    (
        "bad k8s ref",
        "kv:\n  secret/a:\n    data:\n      k: k8s:ns/name\n",
        "kv.secret/a.data.k: k8s reference must look like",
    ),
    (
        "untemplated url",
        DB.replace("{{username}}:{{password}}@", "admin:pw@"),
        "secrets.database.connections.pg.connection_url: connection_url must be templated",
    ),
    (
        "role on unknown connection",
        DB.replace("db_name: pg", "db_name: other"),
        "secrets.database: roles.app.db_name: 'other' is not a connection",
    ),
    (
        "reserved mount",
        "secrets:\n  sys:\n    type: kv-v2\n",
        "secrets: mount path 'sys' is reserved",
    ),
    (
        "upper-case policy",
        "policies:\n  Reader:\n    policy: x\n",
        "policies: policy name 'Reader' must be lower-case",
    ),
    (
        "policy both inline and file",
        "policies:\n  r:\n    policy: x\n    file: y\n",
        "policies.r: set exactly one of policy",
    ),
    (
        "token and k8s login",
        "connection:\n  token: env:T\n  kubernetes_login: {role: r}\n",
        "connection: set either token or kubernetes_login",
    ),
    (
        "threshold > shares",
        "init:\n  secret_shares: 1\n  secret_threshold: 2\n  key_store: {file: /tmp/k}\n",
        "init: secret_threshold must not exceed",
    ),
    (
        "key store both",
        "init:\n  key_store: {file: /tmp/k, kubernetes_secret: {namespace: a, name: b}}\n",
        "init.key_store: set exactly one",
    ),
    (
        "bad interpolation",
        K8S.replace("https://k", "${env:9x}"),
        "auth.kubernetes.config.kubernetes_host: bad variable name",
    ),
    (
        "kv path outside mount",
        "kv:\n  secret/a:\n    mount: other\n    data: {k: env:X}\n",
        "kv: kv path 'secret/a' must be <mount>/<path>",
    ),
    (
        "boolean as string",
        K8S.replace("https://k", "https://k\n      disable_local_ca_jwt: 'yes'"),
        "auth.kubernetes.config.disable_local_ca_jwt:",
    ),
    ("duplicate key", "prune: true\nprune: false\n", "line 2: duplicate key 'prune'"),
    ("yaml syntax", "auth: [\n", "line "),
    ("top level list", "- a\n", "the top level must be a mapping"),
]


@pytest.mark.parametrize(("label", "text", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_one_line_with_field_path(
    tmp_path: Path, label: str, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message, message
    assert "hunter2-literal" not in message and "plain-value" not in message
    # The same through the CLI: exit 1, exactly one line on stderr, nothing on stdout.
    proc = subprocess.run(
        [sys.executable, "-m", "vault_bootstrap.cli", "plan", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: {message}\n"


def test_cli_bad_config_exit_1_one_line_no_stdout(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DB.replace("env:PGPASSWORD", "hunter2-literal"))
    for cmd in (["validate"], ["plan"], ["apply"]):
        proc = subprocess.run(
            [sys.executable, "-m", "vault_bootstrap.cli", *cmd, "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1, (cmd, proc.stderr)
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: ") and "connections.pg.password" in lines[0]
        assert "hunter2-literal" not in proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_missing_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vault_bootstrap.cli", "plan", "-f", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == f"error: {tmp_path / 'nope.yaml'}: cannot read: No such file or directory"
    )


def test_chapter_config_validates() -> None:
    config = load_config(CHAPTER)
    assert set(config.auth) == {"kubernetes"}
    assert config.auth["kubernetes"].roles["welcome-message"].token_ttl == 3600
    assert config.secrets["database"].roles["welcome-message"].max_ttl == 86400  # type: ignore[union-attr]
    assert str(config.kv["secret/myapps/welcome/config"].data["name-service-token"]) == (
        "env:NAME_SERVICE_TOKEN"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800)],
)
def test_durations(value: object, seconds: int) -> None:
    from vault_bootstrap._config import _duration

    assert _duration(value) == seconds


def test_reference_forms() -> None:
    from vault_bootstrap._refs import SecretRef, parse_secret_ref

    assert parse_secret_ref("env:A") == SecretRef("env", "A")
    assert parse_secret_ref({"file": "/x"}) == SecretRef("file", "/x")
    assert parse_secret_ref({"k8sSecret": {"namespace": "n", "name": "s", "key": "k"}}) == (
        SecretRef("k8s", "n/s#k")
    )
    assert parse_secret_ref("k8s:vault/reviewer-token#token") == SecretRef(
        "k8s", "vault/reviewer-token#token"
    )


def test_resolver_text_and_secret(tmp_path: Path) -> None:
    from vault_bootstrap import ResolveError
    from vault_bootstrap._refs import Resolver, SecretRef

    f = tmp_path / "tok"
    f.write_text("file-secret-value\n")
    r = Resolver({"HOST": "db.example", "EMPTY": ""})
    assert r.text("pg://${env:HOST}:${env:PORT:-5432}/{{username}}", "x") == (
        "pg://db.example:5432/{{username}}"
    )
    assert r.text("${env:EMPTY:-fallback}", "x") == "fallback"
    assert r.secret(SecretRef("file", str(f)), "x").reveal() == "file-secret-value"
    assert repr(r.secret(SecretRef("file", str(f)), "x")) == "(sensitive)"
    with pytest.raises(ResolveError, match="kv.a.data.k: environment variable NOPE is not set"):
        r.secret(SecretRef("env", "NOPE"), "kv.a.data.k")
    with pytest.raises(ResolveError, match="needs Kubernetes access"):
        r.secret(SecretRef("k8s", "ns/s#k"), "f")
