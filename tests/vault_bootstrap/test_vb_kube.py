"""The chapter's setup end to end on the real kube-apiserver: TokenRequest -> Vault kubernetes
login (a real TokenReview) -> dynamic PostgreSQL credentials -> a query; KV read; 403 elsewhere.

Tests bind the app's service account in their own namespace (WELCOME_NAMESPACE) and create the
system:auth-delegator bindings they need, removing them afterwards.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vb_helpers import CHAPTER, NAME_SERVICE_TOKEN, chapter_env, hvac_client, require, run_cli

pytestmark = pytest.mark.stack


@pytest.fixture
def rbac(kube_api: Any) -> Iterator[Any]:
    """Creates ClusterRoleBindings to system:auth-delegator; deletes them at teardown."""
    from kubernetes import client

    api = client.RbacAuthorizationV1Api(kube_api)
    made: list[str] = []

    def bind(namespace: str, sa: str) -> None:
        name = f"vb-{namespace}-{sa}"[:63]
        api.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=name, labels={"sealkit-test": "1"}),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io",
                    kind="ClusterRole",
                    name="system:auth-delegator",
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=namespace)
                ],
            )
        )
        made.append(name)

    yield bind
    for name in made:
        api.delete_cluster_role_binding(name)


def _service_account(kube_api: Any, namespace: str, name: str) -> None:
    from kubernetes import client

    client.CoreV1Api(kube_api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )


def _token(kube_api: Any, namespace: str, name: str) -> str:
    from kubernetes import client

    spec = client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    resp = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(spec=spec)
    )
    return str(resp.status.token)


def _login_and_use(bao: Any, stack: Any, jwt: str) -> None:
    import hvac
    import psycopg

    app = hvac.Client(url=bao.addr, token="")
    resp = app.auth.kubernetes.login(role="welcome-message", jwt=jwt, mount_point="kubernetes")
    assert "welcome-message" in resp["auth"]["policies"]
    creds = app.secrets.database.generate_credentials("welcome-message", mount_point="database")
    with psycopg.connect(
        host=stack.pg_host,
        port=stack.pg_port,
        dbname=stack.pg_database,
        user=creds["data"]["username"],
        password=creds["data"]["password"],
        connect_timeout=10,
    ) as conn:
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
    kv = app.secrets.kv.v2.read_secret_version(
        "myapps/welcome/config", mount_point="secret", raise_on_deleted_version=True
    )
    assert kv["data"]["data"]["name-service-token"] == NAME_SERVICE_TOKEN
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_version(
            "other/config", mount_point="secret", raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        app.read("database/config/postgres")
    hvac_client(bao.addr, bao.token).sys.revoke_lease(creds["lease_id"])


def test_chapter_login_reads_db_creds_and_kv_and_is_refused_elsewhere(
    stack: Any, kube_api: Any, namespace: str, private_bao: Any, rbac: Any
) -> None:
    require(stack, "kube", "postgres")
    import hvac

    _service_account(kube_api, namespace, "welcome-message")
    _service_account(kube_api, namespace, "intruder")
    rbac(namespace, "welcome-message")  # the login JWT reviews itself (no reviewer JWT)
    env = chapter_env(stack, private_bao, ca_file=stack.ca_file, WELCOME_NAMESPACE=namespace)
    out = run_cli("apply", "-f", str(CHAPTER), env=env)
    assert out.code == 0, out.output

    _login_and_use(private_bao, stack, _token(kube_api, namespace, "welcome-message"))

    rbac(namespace, "intruder")
    app = hvac.Client(url=private_bao.addr, token="")
    with pytest.raises(hvac.exceptions.VaultError):  # not bound to the role
        app.auth.kubernetes.login(
            role="welcome-message",
            mount_point="kubernetes",
            jwt=_token(kube_api, namespace, "intruder"),
        )

    again = run_cli("apply", "-f", str(CHAPTER), env=env)
    assert again.code == 0 and "Apply complete: 0 writes." in again.stdout, again.output
    assert run_cli("plan", "-f", str(CHAPTER), env=env).code == 0


VERIFY = """
verify:
  service_account: {{namespace: {ns}, name: welcome-message}}
  role: welcome-message
  database:
    role: welcome-message
    host: ${{env:PGHOST}}
    port: ${{env:PGPORT}}
    dbname: ${{env:PGDATABASE}}
    query: SELECT current_user
  read_kv: [secret/myapps/welcome/config]
  denied_kv: [secret/other/config]
"""


def test_verify_phase_and_no_secret_in_any_output(
    stack: Any, kube_api: Any, namespace: str, private_bao: Any, rbac: Any, tmp_path: Path
) -> None:
    require(stack, "kube", "postgres")
    _service_account(kube_api, namespace, "welcome-message")
    rbac(namespace, "welcome-message")
    config = tmp_path / "verify.yaml"
    config.write_text(CHAPTER.read_text() + VERIFY.format(ns=namespace))
    env = chapter_env(stack, private_bao, ca_file=stack.ca_file, WELCOME_NAMESPACE=namespace)

    outputs = []
    for args in (
        ["plan"],
        ["plan", "--json"],
        ["apply", "-v", "--debug"],
        ["apply", "--debug"],
        ["plan", "--debug", "-v"],
    ):
        res = run_cli(*args, "-f", str(config), env=env)
        outputs.append(res.output)
        assert res.code in (0, 2), res.output
    applied = outputs[2]
    assert re.search(r"verify: logged in as t-[^ ]+/welcome-message via auth/kubernetes", applied)
    assert re.search(
        r"verify: dynamic credentials from database/creds/welcome-message ran "
        r"'SELECT current_user'",
        applied,
    )
    assert "verify: read secret/myapps/welcome/config (1 keys)" in applied
    assert "verify: refused secret/other/config (403) as expected" in applied

    # The bootstrap must never print a secret value: grep every byte it wrote.
    secrets = [NAME_SERVICE_TOKEN, env["PGPASSWORD"], env["VAULT_TOKEN"]]
    for text in outputs:
        for secret in secrets:
            assert secret not in text


def test_reviewer_jwt_from_a_kubernetes_secret_reference(
    stack: Any, kube_api: Any, namespace: str, private_bao: Any, rbac: Any, tmp_path: Path
) -> None:
    require(stack, "kube", "postgres")
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    _service_account(kube_api, namespace, "welcome-message")  # NOT an auth-delegator
    _service_account(kube_api, namespace, "vault-reviewer")
    rbac(namespace, "vault-reviewer")
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="vault-reviewer-token",
                annotations={"kubernetes.io/service-account.name": "vault-reviewer"},
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    deadline = time.monotonic() + 60
    while not (core.read_namespaced_secret("vault-reviewer-token", namespace).data or {}).get(
        "token"
    ):
        assert time.monotonic() < deadline, "token controller did not fill the Secret"
        time.sleep(0.5)

    config = tmp_path / "reviewer.yaml"
    config.write_text(
        CHAPTER.read_text().replace(
            "      disable_local_ca_jwt: true\n",
            "      disable_local_ca_jwt: true\n"
            f"      token_reviewer_jwt: k8s:{namespace}/vault-reviewer-token#token\n",
        )
    )
    env = chapter_env(stack, private_bao, ca_file=stack.ca_file, WELCOME_NAMESPACE=namespace)
    plan = run_cli("plan", "-f", str(config), env=env)
    assert "+ token_reviewer_jwt = (sensitive)" in plan.stdout, plan.output
    out = run_cli("apply", "-f", str(config), env=env)
    assert out.code == 0, out.output
    cfg = hvac_client(private_bao.addr, private_bao.token).read("auth/kubernetes/config")
    assert cfg["data"]["token_reviewer_jwt_set"] is True

    _login_and_use(private_bao, stack, _token(kube_api, namespace, "welcome-message"))

    again = run_cli("apply", "-f", str(config), env=env)
    assert again.code == 0 and "Apply complete: 0 writes." in again.stdout, again.output
    reviewer_jwt = core.read_namespaced_secret("vault-reviewer-token", namespace).data["token"]
    import base64

    assert base64.b64decode(reviewer_jwt).decode() not in plan.output + out.output + again.output


def test_bootstrap_logs_in_with_kubernetes_auth_and_least_privilege(
    stack: Any, kube_api: Any, namespace: str, private_bao: Any, rbac: Any, tmp_path: Path
) -> None:
    """After a first apply with a root token, the Job runs as its own service account."""
    require(stack, "kube", "postgres")
    _service_account(kube_api, namespace, "welcome-message")
    _service_account(kube_api, namespace, "vault-bootstrap")
    rbac(namespace, "vault-bootstrap")
    policy_file = CHAPTER.parent / "bootstrap-policy.hcl"
    base = (
        CHAPTER.read_text()
        .replace(
            "policies:\n",
            f"policies:\n  vault-bootstrap:\n    file: {policy_file}\n",
            1,
        )
        .replace(
            "    roles:\n      welcome-message:\n        bound",
            "    roles:\n      vault-bootstrap:\n"
            "        bound_service_account_names: [vault-bootstrap]\n"
            f"        bound_service_account_namespaces: [{namespace}]\n"
            "        token_policies: [vault-bootstrap]\n"
            "        token_ttl: 10m\n"
            "      welcome-message:\n        bound",
            1,
        )
    )
    first = tmp_path / "first.yaml"
    first.write_text(base)
    env = chapter_env(stack, private_bao, ca_file=stack.ca_file, WELCOME_NAMESPACE=namespace)
    out = run_cli("apply", "-f", str(first), env=env)
    assert out.code == 0, out.output

    jwt_file = tmp_path / "sa-token"
    jwt_file.write_text(_token(kube_api, namespace, "vault-bootstrap"))
    as_sa = tmp_path / "as-sa.yaml"
    as_sa.write_text(
        f"connection:\n  kubernetes_login:\n    role: vault-bootstrap\n    jwt: file:{jwt_file}\n"
        + base
    )
    no_token = {k: v for k, v in env.items() if k != "VAULT_TOKEN"}
    plan = run_cli("plan", "-v", "-f", str(as_sa), env=no_token)
    assert plan.code == 0, plan.output
    assert "logged in with kubernetes auth (role vault-bootstrap)" in plan.stderr
    # Drift is fixed with the service account's own (non-root) token.
    hvac_client(private_bao.addr, private_bao.token).write_data(
        "auth/kubernetes/role/welcome-message", data={"token_ttl": 5}
    )
    fixed = run_cli("apply", "-f", str(as_sa), env=no_token)
    assert fixed.code == 0 and "Apply complete: 1 writes." in fixed.stdout, fixed.output
    assert jwt_file.read_text() not in plan.output + fixed.output


def test_init_keys_into_a_kubernetes_secret(
    stack: Any, kube_api: Any, namespace: str, file_bao: Any, tmp_path: Path
) -> None:
    require(stack, "kube", "postgres")
    import base64

    from kubernetes import client

    config = tmp_path / "init-k8s.yaml"
    config.write_text(
        CHAPTER.read_text()
        + "\ninit:\n  key_store:\n    kubernetes_secret:\n"
        + f"      namespace: {namespace}\n      name: vault-unseal-keys\n"
    )
    env = chapter_env(stack, file_bao, ca_file=stack.ca_file, WELCOME_NAMESPACE=namespace)
    assert "VAULT_TOKEN" not in env

    sealed_plan = run_cli("plan", "-f", str(config), env=env)
    assert sealed_plan.code == 1
    assert "run apply to init/unseal" in sealed_plan.stderr

    out = run_cli("apply", "-v", "-f", str(config), env=env)
    assert out.code == 0, out.output
    secret = client.CoreV1Api(kube_api).read_namespaced_secret("vault-unseal-keys", namespace)
    assert set(secret.data) == {"unseal-key-0", "root-token"}
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "vault-bootstrap"
    for value in secret.data.values():
        assert base64.b64decode(value).decode() not in out.output

    file_bao.stop()
    file_bao.start()  # sealed again: the next run unseals from the Secret
    again = run_cli("apply", "-v", "-f", str(config), env=env)
    assert again.code == 0, again.output
    assert "unsealing Vault with keys from Secret" in again.stderr
    assert "Apply complete: 0 writes." in again.stdout
