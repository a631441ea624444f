"""plan/apply of the chapter config against a real OpenBao and the stack's real PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from vb_helpers import CHAPTER, NAME_SERVICE_TOKEN, chapter_env, hvac_client, require, run_cli

pytestmark = pytest.mark.stack


@pytest.fixture
def env(stack: Any, private_bao: Any, dummy_ca: str) -> dict[str, str]:
    require(stack, "postgres")
    return chapter_env(stack, private_bao, ca_file=dummy_ca)


def _writes(stdout: str) -> int:
    m = re.search(r"Apply complete: (\d+) writes", stdout)
    assert m, stdout
    return int(m.group(1))


def test_chapter_first_apply_then_zero_writes(
    env: dict[str, str], private_bao: Any, stack: Any
) -> None:
    first_plan = run_cli("plan", "-f", str(CHAPTER), env=env)
    assert first_plan.code == 2, first_plan.output
    assert "+ auth/kubernetes/role/welcome-message" in first_plan.stdout
    assert "+ password = (sensitive)" in first_plan.stdout

    applied = run_cli("apply", "-f", str(CHAPTER), env=env)
    assert applied.code == 0, applied.output
    assert _writes(applied.stdout) >= 8

    again = run_cli("apply", "-f", str(CHAPTER), env=env)
    assert again.code == 0, again.output
    assert _writes(again.stdout) == 0
    assert "No changes." in again.stdout

    plan = run_cli("plan", "-f", str(CHAPTER), env=env)
    assert plan.code == 0, plan.output
    assert plan.stdout.strip() == "No changes. Vault matches the configuration."

    client = hvac_client(private_bao.addr, private_bao.token)
    meta = client.secrets.kv.v2.read_secret_metadata("myapps/welcome/config", mount_point="secret")
    assert meta["data"]["current_version"] == 1  # written once, no version churn
    assert meta["data"]["custom_metadata"] == {"managed-by": "vault-bootstrap"}
    kv = client.secrets.kv.v2.read_secret_version(
        "myapps/welcome/config", mount_point="secret", raise_on_deleted_version=True
    )
    assert kv["data"]["data"] == {"name-service-token": NAME_SERVICE_TOKEN}
    # The database role really works against the stack's PostgreSQL.
    creds = client.secrets.database.generate_credentials("welcome-message", mount_point="database")
    import psycopg

    with psycopg.connect(
        host=stack.pg_host,
        port=stack.pg_port,
        dbname=stack.pg_database,
        user=creds["data"]["username"],
        password=creds["data"]["password"],
    ) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == creds["data"]["username"]
    client.sys.revoke_lease(creds["lease_id"])


def test_json_plan(env: dict[str, str]) -> None:
    import json

    out = run_cli("plan", "--json", "-f", str(CHAPTER), env=env)
    assert out.code == 2
    data = json.loads(out.stdout)
    kinds = {c["kind"] for c in data["changes"]}
    assert {"k8s_config", "k8s_role", "db_connection", "db_role", "policy", "kv"} <= kinds
    pw = [f for c in data["changes"] for f in c["fields"] if f["name"] == "password"]
    assert pw == [
        {"name": "password", "op": "+", "before": None, "after": "(sensitive)", "sensitive": True}
    ]
    assert data["summary"]["has_changes"] is True


def test_hand_changed_role_shows_in_plan_and_apply_fixes_it(
    env: dict[str, str], private_bao: Any
) -> None:
    assert run_cli("apply", "-f", str(CHAPTER), env=env).code == 0
    client = hvac_client(private_bao.addr, private_bao.token)
    client.write_data(
        "auth/kubernetes/role/welcome-message",
        data={"token_ttl": "60s", "token_policies": ["default"]},
    )
    client.write_data(
        "database/roles/welcome-message",
        data={"db_name": "postgres", "creation_statements": ["SELECT 1"], "default_ttl": 5},
    )

    plan = run_cli("plan", "-f", str(CHAPTER), env=env)
    assert plan.code == 2, plan.output
    assert "~ auth/kubernetes/role/welcome-message" in plan.stdout
    assert "~ token_ttl: 60 -> 3600" in plan.stdout
    assert '~ token_policies: ["default"] -> ["welcome-message"]' in plan.stdout
    assert "~ default_ttl: 5 -> 3600" in plan.stdout
    assert "Plan: 0 to add, 2 to change, 0 to delete." in plan.stdout

    fixed = run_cli("apply", "-f", str(CHAPTER), env=env)
    assert fixed.code == 0 and _writes(fixed.stdout) == 2, fixed.output
    assert run_cli("plan", "-f", str(CHAPTER), env=env).code == 0
    role = client.read("auth/kubernetes/role/welcome-message")["data"]
    assert role["token_ttl"] == 3600 and role["token_policies"] == ["welcome-message"]


def test_kv_changes_only_on_a_difference(env: dict[str, str], private_bao: Any) -> None:
    assert run_cli("apply", "-f", str(CHAPTER), env=env).code == 0
    env2 = dict(env, NAME_SERVICE_TOKEN="nst-rotated-value-99887766")
    plan = run_cli("plan", "-f", str(CHAPTER), env=env2)
    assert plan.code == 2 and "~ data.name-service-token = (sensitive)" in plan.stdout
    assert "nst-rotated-value-99887766" not in plan.output
    assert _writes(run_cli("apply", "-f", str(CHAPTER), env=env2).stdout) == 1
    client = hvac_client(private_bao.addr, private_bao.token)
    meta = client.secrets.kv.v2.read_secret_metadata("myapps/welcome/config", mount_point="secret")
    assert meta["data"]["current_version"] == 2


def test_bao_env_vars_win_over_vault_ones(stack: Any, private_bao: Any, dummy_ca: str) -> None:
    require(stack, "postgres")
    env = chapter_env(stack, private_bao, ca_file=dummy_ca, use_bao_prefix=True)
    env["VAULT_ADDR"] = "http://127.0.0.1:1"  # dead: must not be used
    env["VAULT_TOKEN"] = "wrong-token-never-used"
    out = run_cli("apply", "-f", str(CHAPTER), env=env)
    assert out.code == 0, out.output
    only_vault = chapter_env(stack, private_bao, ca_file=dummy_ca)
    assert run_cli("plan", "-f", str(CHAPTER), env=only_vault).code == 0


def test_bad_token_is_one_line_error(env: dict[str, str]) -> None:
    env = dict(env, VAULT_TOKEN="bogus-token-value-1234")
    out = run_cli("plan", "-f", str(CHAPTER), env=env)
    assert out.code == 1
    assert out.stderr.strip().startswith("error: connection: the token from BAO_TOKEN/VAULT_TOKEN")
    assert len(out.stderr.strip().splitlines()) == 1
    assert "bogus-token-value-1234" not in out.output


def test_missing_env_reference_names_field(env: dict[str, str]) -> None:
    env = {k: v for k, v in env.items() if k != "NAME_SERVICE_TOKEN"}
    out = run_cli("plan", "-f", str(CHAPTER), env=env)
    assert out.code == 1
    assert out.stderr.strip() == (
        "error: kv.secret/myapps/welcome/config.data.name-service-token: "
        "environment variable NAME_SERVICE_TOKEN is not set"
    )


PRUNE_EXTRA = """
  extra-policy:
    policy: |
      path "secret/data/extra" { capabilities = ["read"] }
"""


def test_prune_removes_only_owned_objects(
    env: dict[str, str], private_bao: Any, tmp_path: Path
) -> None:
    client = hvac_client(private_bao.addr, private_bao.token)
    client.sys.create_or_update_acl_policy("handmade", 'path "x" { capabilities = ["read"] }')
    text = CHAPTER.read_text()
    with_extra = text.replace("policies:\n", "policies:" + PRUNE_EXTRA, 1)
    with_extra = with_extra.replace(
        "kv:\n", "kv:\n  secret/extra/entry:\n    data:\n      k: env:NAME_SERVICE_TOKEN\n", 1
    )
    with_extra = with_extra.replace(
        "    roles:\n      welcome-message:\n        bound",
        "    roles:\n      extra-role:\n        bound_service_account_names: [x]\n"
        "        bound_service_account_namespaces: [x]\n      welcome-message:\n        bound",
        1,
    )
    with_extra = with_extra.replace("secrets:\n", "secrets:\n  extra-kv:\n    type: kv-v2\n", 1)
    big = tmp_path / "big.yaml"
    big.write_text(with_extra)
    assert run_cli("apply", "-f", str(big), env=env).code == 0
    small = tmp_path / "small.yaml"
    small.write_text(text)

    plan = run_cli("plan", "-f", str(small), env=env)
    assert plan.code == 0, plan.output  # removal is not pruning unless asked
    plan = run_cli("plan", "--prune", "-f", str(small), env=env)
    assert plan.code == 2
    deletes = sorted(line for line in plan.stdout.splitlines() if line.startswith("- "))
    assert deletes == [
        "- auth/kubernetes/role/extra-role  [kubernetes auth role] (prune)",
        "- secret/data/extra/entry  [KV v2 entry] (prune)",
        "- sys/mounts/extra-kv  [secrets engine] (prune) - unmounting destroys everything "
        "stored under it",
        "- sys/policies/acl/extra-policy  [ACL policy] (prune)",
    ]
    out = run_cli("apply", "--prune", "-f", str(small), env=env)
    assert out.code == 0, out.output
    again = run_cli("apply", "--prune", "-f", str(small), env=env)
    assert again.code == 0 and _writes(again.stdout) == 0, again.output
    assert "extra-kv/" not in client.sys.list_mounted_secrets_engines()["data"]
    policies = client.sys.list_acl_policies()["data"]["keys"]
    assert "extra-policy" not in policies
    assert {"handmade", "default", "root", "welcome-message"} <= set(policies)
    assert client.read("auth/kubernetes/role/extra-role") is None
    assert client.read("secret/metadata/extra/entry") is None
    # Adopted (pre-existing) objects are managed but never ours to prune: the dev server's
    # secret/ mount survives a config that no longer mentions it.
    no_mount = small.read_text().replace("  secret:\n    type: kv-v2\n", "")
    small.write_text(no_mount)
    out = run_cli("apply", "--prune", "-f", str(small), env=env)
    assert out.code == 0 and _writes(out.stdout) == 0, out.output
    assert "secret/" in client.sys.list_mounted_secrets_engines()["data"]


def test_every_optional_field_round_trips_without_a_perpetual_diff(
    env: dict[str, str], tmp_path: Path
) -> None:
    text = CHAPTER.read_text()
    text = (
        text.replace(
            "        token_max_ttl: 4h\n",
            "        token_max_ttl: 4h\n        token_type: service\n        audience: vault\n"
            "        alias_name_source: serviceaccount_name\n",
        )
        .replace(
            "      disable_local_ca_jwt: true\n",
            "      disable_local_ca_jwt: true\n      issuer: https://kubernetes.default.svc.cluster.local\n"
            "      disable_iss_validation: false\n",
        )
        .replace(
            "        allowed_roles: [welcome-message]\n",
            "        allowed_roles: [welcome-message, other]\n"
            "        password_authentication: scram-sha-256\n"
            "        username_template: 'v-{{.RoleName}}-{{random 8}}'\n"
            "        max_open_connections: 3\n        max_idle_connections: 1\n"
            "        max_connection_lifetime: 90s\n"
            "        root_rotation_statements:\n"
            "          - ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';\n",
        )
        .replace(
            "        max_ttl: 24h\n",
            "        max_ttl: 24h\n        renew_statements: "
            '"ALTER ROLE \\"{{name}}\\" VALID UNTIL \'{{expiration}}\';"\n',
        )
    )
    path = tmp_path / "full.yaml"
    path.write_text(
        text.replace(
            "  secret:\n    type: kv-v2\n",
            "  secret:\n    type: kv-v2\n    description: app secrets\n",
        )
    )
    out = run_cli("apply", "-f", str(path), env=env)
    assert out.code == 0, out.output
    plan = run_cli("plan", "-f", str(path), env=env)
    assert plan.code == 0, plan.stdout


def test_json_logs_are_one_object_per_line_and_redacted(env: dict[str, str]) -> None:
    import json

    out = run_cli("apply", "-v", "--debug", "--log-format", "json", "-f", str(CHAPTER), env=env)
    assert out.code == 0, out.output
    records = [json.loads(line) for line in out.stderr.splitlines()]
    messages = [r["message"] for r in records]
    assert (
        "create database/config/postgres (plugin_name, connection_url, username, "
        "allowed_roles, password)" in messages
    )
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error"}
    for secret in (NAME_SERVICE_TOKEN, env["PGPASSWORD"], env["VAULT_TOKEN"]):
        assert secret not in out.output


def test_kv_create_only_never_overwrites_and_enforce_removes_extra_keys(
    env: dict[str, str], private_bao: Any, tmp_path: Path
) -> None:
    client = hvac_client(private_bao.addr, private_bao.token)
    client.secrets.kv.v2.create_or_update_secret(
        "seeded/by-hand", secret={"k": "hand-value-1234"}, mount_point="secret"
    )
    client.secrets.kv.v2.create_or_update_secret(
        "myapps/welcome/config",
        secret={"name-service-token": NAME_SERVICE_TOKEN, "stale": "stale-value-5678"},
        mount_point="secret",
    )
    path = tmp_path / "kv.yaml"
    path.write_text(
        CHAPTER.read_text().replace(
            "kv:\n",
            "kv:\n  secret/seeded/by-hand:\n    mode: create-only\n    data:\n"
            "      k: env:NAME_SERVICE_TOKEN\n"
            "  secret/seeded/fresh:\n    mode: create-only\n    data:\n"
            "      k: env:NAME_SERVICE_TOKEN\n",
            1,
        )
    )
    plan = run_cli("plan", "-f", str(path), env=env)
    assert "secret/data/seeded/by-hand" not in plan.stdout  # exists: create-only leaves it
    assert "+ secret/data/seeded/fresh" in plan.stdout
    assert "    - data.stale" in plan.stdout  # enforce: keys not in the file go
    assert "stale-value-5678" not in plan.output and "hand-value-1234" not in plan.output
    assert run_cli("apply", "-f", str(path), env=env).code == 0
    hand = client.secrets.kv.v2.read_secret_version(
        "seeded/by-hand", mount_point="secret", raise_on_deleted_version=True
    )
    assert hand["data"]["data"] == {"k": "hand-value-1234"}
    app = client.secrets.kv.v2.read_secret_version(
        "myapps/welcome/config", mount_point="secret", raise_on_deleted_version=True
    )
    assert app["data"]["data"] == {"name-service-token": NAME_SERVICE_TOKEN}
    assert run_cli("plan", "-f", str(path), env=env).code == 0
