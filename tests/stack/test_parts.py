"""Each stack part works for real: Kubernetes semantics, OpenBao, PostgreSQL, kubeseal."""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.stack


def eventually(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


def _gone(read: Callable[[], object]) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        read()
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


# -- Kubernetes ---------------------------------------------------------------


def test_garbage_collector_cascades_owner_reference(kube_api: Any, namespace: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="owner"), string_data={"k": "v"}),
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="Secret", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref]),
            data={"a": "b"},
        ),
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bystander"))
    )
    core.delete_namespaced_secret("owner", namespace)
    eventually(
        lambda: _gone(lambda: core.read_namespaced_config_map("dependent", namespace)),
        what="the garbage collector to delete the dependent ConfigMap",
    )
    # Only the owned object goes.
    assert core.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"


def test_namespace_deletion_finishes(kube_api: Any) -> None:
    """The namespace controller empties and removes a deleted namespace."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    name = f"t-nsdel-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
    )
    eventually(lambda: _sa_exists(core, name), what="the serviceaccount controller's default SA")
    core.delete_namespace(name)
    eventually(lambda: _gone(lambda: core.read_namespace(name)), what="namespace removal")


def _sa_exists(core: Any, ns: str) -> bool:
    return not _gone(lambda: core.read_namespaced_service_account("default", ns))


def test_crd_custom_object_and_status_subresource(kube_api: Any, namespace: str) -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(kube_api)
    group = f"t{secrets.token_hex(4)}.devstack.sealkit.test"
    crd_name = f"widgets.{group}"
    schema = client.V1JSONSchemaProps(
        type="object",
        properties={
            "spec": client.V1JSONSchemaProps(
                type="object", properties={"size": client.V1JSONSchemaProps(type="integer")}
            ),
            "status": client.V1JSONSchemaProps(
                type="object", properties={"phase": client.V1JSONSchemaProps(type="string")}
            ),
        },
    )
    ext.create_custom_resource_definition(
        client.V1CustomResourceDefinition(
            metadata=client.V1ObjectMeta(name=crd_name),
            spec=client.V1CustomResourceDefinitionSpec(
                group=group,
                scope="Namespaced",
                names=client.V1CustomResourceDefinitionNames(
                    plural="widgets", singular="widget", kind="Widget"
                ),
                versions=[
                    client.V1CustomResourceDefinitionVersion(
                        name="v1",
                        served=True,
                        storage=True,
                        schema=client.V1CustomResourceValidation(open_apiv3_schema=schema),
                        subresources=client.V1CustomResourceSubresources(status={}),
                    )
                ],
            ),
        )
    )
    try:

        def established() -> bool:
            conds = ext.read_custom_resource_definition(crd_name).status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conds)

        eventually(established, what="the CRD to be established")
        objs = client.CustomObjectsApi(kube_api)
        body = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
            "status": {"phase": "ignored-on-create"},
        }

        def create() -> bool:
            from kubernetes.client.rest import ApiException

            try:
                objs.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)
            except ApiException as err:
                if err.status == 404:  # discovery may lag Established briefly
                    return False
                raise
            return True

        eventually(create, timeout=30, what="the custom resource endpoint")
        created = objs.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w1")
        assert "status" not in created  # status subresource: the main endpoint ignores it
        objs.patch_namespaced_custom_object_status(
            group, "v1", namespace, "widgets", "w1", {"status": {"phase": "Ready"}}
        )
        got = objs.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w1")
        assert got["status"] == {"phase": "Ready"}
        assert got["spec"] == {"size": 3}
        assert got["metadata"]["generation"] == 1  # a status write does not bump generation
    finally:
        ext.delete_custom_resource_definition(crd_name)


def _service_account_token(kube_api: Any, namespace: str, sa: str, **spec: Any) -> str:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    if _gone(lambda: core.read_namespaced_service_account(sa, namespace)):
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa))
        )
    spec.setdefault("audiences", [])
    spec.setdefault("expiration_seconds", 600)
    req = core.create_namespaced_service_account_token(
        sa,
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(**spec)),
    )
    return str(req.status.token)


def test_token_request_and_token_review(kube_api: Any, namespace: str) -> None:
    from kubernetes import client

    token = _service_account_token(kube_api, namespace, "app")
    authn = client.AuthenticationV1Api(kube_api)
    review = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    )
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{namespace}:app"

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    review = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=forged))
    )
    assert not review.status.authenticated


def test_vault_kubernetes_auth_against_this_apiserver(
    stack: Any, kube_api: Any, vault_client: Any, namespace: str
) -> None:
    import hvac
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(kube_api)
    binding = f"{namespace}-reviewer"
    reviewer_jwt = _service_account_token(kube_api, namespace, "reviewer", expiration_seconds=3600)
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=binding),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name="system:auth-delegator",
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="reviewer", namespace=namespace)
            ],
        )
    )
    mount = f"k8s-{secrets.token_hex(4)}"
    policy = f"p-{secrets.token_hex(4)}"
    try:
        vault_client.sys.enable_auth_method("kubernetes", path=mount)
        vault_client.write_data(
            f"auth/{mount}/config",
            data={
                "kubernetes_host": stack.apiserver_url,
                "kubernetes_ca_cert": Path(stack.ca_file).read_text(),
                "token_reviewer_jwt": reviewer_jwt,
                "disable_local_ca_jwt": True,
            },
        )
        vault_client.sys.create_or_update_policy(
            policy, 'path "secret/data/app/*" { capabilities = ["read"] }'
        )
        vault_client.write_data(
            f"auth/{mount}/role/app",
            data={
                "bound_service_account_names": ["app"],
                "bound_service_account_namespaces": [namespace],
                "token_policies": [policy],
                "token_ttl": "10m",
            },
        )
        app_jwt = _service_account_token(kube_api, namespace, "app")
        login = hvac.Client(url=vault_client.url)
        resp = login.auth.kubernetes.login("app", app_jwt, mount_point=mount)
        assert set(resp["auth"]["policies"]) == {"default", policy}
        assert resp["auth"]["metadata"]["service_account_namespace"] == namespace
        assert login.lookup_token()["data"]["policies"] == sorted(["default", policy])

        # The role is bound to SA `app`: the reviewer's own token is refused.
        with pytest.raises(hvac.exceptions.VaultError):
            hvac.Client(url=vault_client.url).auth.kubernetes.login(
                "app", reviewer_jwt, mount_point=mount
            )
    finally:
        vault_client.sys.disable_auth_method(mount)
        vault_client.sys.delete_policy(policy)
        rbac.delete_cluster_role_binding(binding)


# -- OpenBao, PostgreSQL, kubeseal ---------------------------------------------------


def test_vault_root_token_works(vault_client: Any) -> None:
    assert vault_client.is_authenticated()
    assert vault_client.sys.read_health_status(method="GET")["sealed"] is False


def test_postgres_accepts_the_stack_credentials(stack: Any, pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, connect_timeout=5) as conn:
        user, superuser = conn.execute(
            "select current_user, current_setting('is_superuser')"
        ).fetchone()
    assert (user, superuser) == (stack.pg_user, "on")

    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_dsn.replace(stack.pg_password, "wrong-password"), connect_timeout=5)


def test_kubeseal_seals_with_cert_file_and_recovery_unseals(
    kubeseal_path: str, tmp_path: Path
) -> None:
    import yaml
    from cryptography.hazmat.primitives import serialization

    from devstack.certs import make_ca

    key, cert = make_ca("sealed-secrets-test")
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    value = secrets.token_hex(8)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "ns1"},
        "data": {"password": base64.b64encode(value.encode()).decode()},
    }
    # No cluster involved: an empty HOME/KUBECONFIG proves it.
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none")}
    sealed = subprocess.run(
        [kubeseal_path, "--cert", str(tmp_path / "cert.pem"), "--format", "yaml"],
        input=yaml.safe_dump(secret).encode(),
        capture_output=True,
        env=env,
        check=True,
        cwd=tmp_path,
    ).stdout
    doc = yaml.safe_load(sealed)
    assert doc["kind"] == "SealedSecret"
    assert value not in sealed.decode()
    opened = subprocess.run(
        [
            kubeseal_path,
            "--recovery-unseal",
            "--recovery-private-key",
            str(tmp_path / "key.pem"),
            "--format",
            "yaml",
        ],
        input=sealed,
        capture_output=True,
        env=env,
        check=True,
        cwd=tmp_path,
    ).stdout
    out = yaml.safe_load(opened)
    assert base64.b64decode(out["data"]["password"]).decode() == value

    other_key, _ = make_ca("other")
    (tmp_path / "other.pem").write_bytes(
        other_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    wrong = subprocess.run(
        [kubeseal_path, "--recovery-unseal", "--recovery-private-key", str(tmp_path / "other.pem")],
        input=sealed,
        capture_output=True,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert wrong.returncode != 0


def test_kubectl_uses_the_admin_kubeconfig(stack: Any, kube_api: Any, kubectl_path: str) -> None:
    import json

    def kubectl(*args: str) -> str:
        return subprocess.run(
            [kubectl_path, "--kubeconfig", str(stack.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    version = json.loads(kubectl("version", "-o", "json"))
    client_minor = int(version["clientVersion"]["minor"].rstrip("+"))
    server_minor = int(version["serverVersion"]["minor"].rstrip("+"))
    assert abs(client_minor - server_minor) <= 1  # supported skew
    assert kubectl("auth", "can-i", "*", "*").strip() == "yes"  # system:masters
    assert kubectl("get", "namespace", "default", "-o", "name").strip() == "namespace/default"
