"""The walkthrough as GitOps with real Argo CD, judged by Argo CD's own status.

One run in a private namespace, on its own branch of the stack's Git repository, with its own
Application names: the example is sealed for the cluster's controller (pods from deploy/),
committed, and synced by Argo CD. The tests of this module run in order on that run:

1. a clean sync is Synced and Healthy (SealedSecrets judged by Argo CD's embedded check, the
   PostSync hook Job ran as a pod, the app reached PostgreSQL with dynamic credentials);
2. a second sync with no change makes 0 Vault writes;
3. a tampered SealedSecret in Git is Degraded in Argo CD, with the controller's message;
4. rotating a value (`sealkit set`, commit, sync): the Secret changes, the hook runs again,
   the Vault entry converges;
5. deleting the Applications prunes the Secrets (ownerReferences) and leaves Vault as it was.

For (5) the run's working copy marks Vault's Deployment and Service
`argocd.argoproj.io/sync-options: Delete=false` (Argo CD keeps them when the app goes), so
Vault can be compared before and after.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1500)]
KEEP = "argocd.argoproj.io/sync-options"


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def keep_vault(gitops: Path) -> None:
    """Argo CD's `Delete=false` on Vault's Deployment and Service (this run's copy only)."""
    for name in ("vault-deployment.yaml", "vault-service.yaml"):
        path = gitops / "cluster" / name
        text = path.read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
        for doc in docs:
            doc["metadata"].setdefault("annotations", {})[KEEP] = "Delete=false"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


@pytest.fixture(scope="module")
def run(
    stack: Any, argocd: Any, kube_api: Any, demo: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from devstack.testing import require, unavailable

    require(stack, "kube", "kubectl", "argocd")
    if not getattr(stack, "node", None):
        unavailable("the stack has no node: Argo CD's sync of the example needs pods")
    suffix = secrets.token_hex(3)
    ns = f"e2e-argo-{suffix}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"sealkit-test": "1"}))
    )
    workdir = tmp_path_factory.mktemp("e2e-argo")
    walk = demo.Walkthrough(
        env=dict(stack.env),
        workdir=workdir,
        namespace=ns,
        key_namespace="kube-system",
        log=demo.Log(workdir / "e2e.log"),
        vault_addr="",
        vault_token="",
        branch=f"e2e-{suffix}",
        app_suffix=f"-{suffix}",
    )
    try:
        demo.install_crd(walk.kubectl, walk.kubeconfig, walk.log)
        walk.prepare_cluster(Path(stack.dir))
        walk.seal_working_copy(demo.stack_images())
        keep_vault(walk.gitops)
        yield walk
    except demo.StepFailed as err:
        pytest.fail(f"{err}\n--- log ---\n{log_tail(walk.log.path)}", pytrace=False)
    finally:
        for name in reversed(walk.app_names()):
            with contextlib.suppress(Exception):
                walk.argo().delete(name)
        # Other tests run controllers of their own: a cluster-wide one must not outlive us.
        with contextlib.suppress(Exception):
            walk.argo().kube(
                "-n",
                "kube-system",
                "delete",
                "deployment",
                "sealed-secrets-controller",
                "--wait=true",
                "--timeout=60s",
            )
        with contextlib.suppress(ApiException):
            core.delete_persistent_volume(f"sealkit-demo-postgresql-{ns}")
        rbac = client.RbacAuthorizationV1Api(kube_api)
        for crb in rbac.list_cluster_role_binding().items:
            if crb.metadata.name.endswith(f"-{ns}"):
                with contextlib.suppress(ApiException):
                    rbac.delete_cluster_role_binding(crb.metadata.name)
        with contextlib.suppress(ApiException):
            core.delete_namespace(ns)


def _fail(run: Any, err: BaseException) -> None:
    pytest.fail(f"{err}\n--- log ---\n{log_tail(run.log.path)}", pytrace=False)


def _cluster_app(run: Any) -> str:
    return f"welcome-message-cluster{run.app_suffix}"


def _writes(hook_log: str) -> int:
    found = re.findall(r"Apply complete: (\d+) writes?", hook_log)
    assert found, hook_log[-2000:]
    return int(found[-1])


def _hook_results(app: dict[str, Any]) -> list[dict[str, Any]]:
    result = ((app.get("status") or {}).get("operationState") or {}).get("syncResult") or {}
    return [r for r in result.get("resources") or [] if r.get("hookType")]


class VaultView:
    """The run's in-cluster Vault through `kubectl port-forward` (the root token is the
    `vault-token` the run sealed)."""

    def __init__(self, run: Any) -> None:
        self.run = run

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        import hvac

        proc = subprocess.Popen(
            [
                self.run.kubectl,
                "--kubeconfig",
                self.run.kubeconfig,
                "-n",
                self.run.namespace,
                "port-forward",
                "svc/vault",
                ":8200",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            port = re.search(r"127\.0\.0\.1:(\d+)", line)
            assert port, line
            yield hvac.Client(
                url=f"http://127.0.0.1:{port.group(1)}",
                token=self.run.inputs["vault-secrets"]["vault-token"],
            )
        finally:
            proc.terminate()
            proc.wait(10)

    def snapshot(self) -> dict[str, Any]:
        with self.client() as vault:
            kv = vault.secrets.kv.v2.read_secret_version(
                path="myapps/welcome/config", mount_point="secret", raise_on_deleted_version=True
            )["data"]["data"]
            return {
                "kv": kv,
                "auth": sorted(vault.sys.list_auth_methods()["data"]),
                "mounts": sorted(vault.sys.list_mounted_secrets_engines()["data"]),
                "role": vault.read("database/roles/welcome-message")["data"],
                "k8s-role": vault.read("auth/kubernetes/role/welcome-message")["data"],
                "policies": sorted(vault.sys.list_policies()["data"]["policies"]),
            }


def test_a_clean_sync_is_synced_and_healthy(run: Any, demo: Any) -> None:
    from kubernetes import client

    try:
        head = run.commit("e2e: the example, sealed for this cluster")
        statuses = run.sync(timeout=600)
    except demo.StepFailed as err:
        _fail(run, err)
    for st in statuses:
        assert (st.sync, st.health, st.revision) == ("Synced", "Healthy", head), st
    cluster = run.argo().status(_cluster_app(run))
    for name in run.inputs:
        res = cluster.resource("SealedSecret", name)
        assert res and res["health"]["status"] == "Healthy", res
        assert demo.read_secret_values(run.api(), run.namespace, name) == run.inputs[name]
        owners = (
            client.CoreV1Api(run.api())
            .read_namespaced_secret(name, run.namespace)
            .metadata.owner_references
        )
        assert [(o.kind, o.name, o.controller) for o in owners] == [("SealedSecret", name, True)]
    hooks = _hook_results(run.argo().get(_cluster_app(run)) or {})
    assert [(h["kind"], h["name"], h["hookType"], h["hookPhase"]) for h in hooks] == [
        ("Job", "vault-bootstrap", "PostSync", "Succeeded")
    ]
    assert _writes(run.hook_log()) > 0
    assert "connected to PostgreSQL as a dynamic user" in run.app_log()


def test_a_second_sync_with_no_change_makes_zero_vault_writes(run: Any, demo: Any) -> None:
    if not run.sync_times:
        pytest.skip("the first sync did not run")
    try:
        run.argo().sync(_cluster_app(run))
        st = run.argo().wait(_cluster_app(run), timeout=300, revision=run.head)
    except demo.ArgoError as err:
        _fail(run, err)
    assert (st.sync, st.health) == ("Synced", "Healthy")
    assert _writes(run.hook_log()) == 0


def _tamper(path: Path, key: str) -> None:
    """Flip one byte of the AES-GCM part of one value: the blob stays well-formed base64,
    the GCM tag no longer matches."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    blob = bytearray(base64.b64decode(docs[0]["spec"]["encryptedData"][key]))
    blob[-1] ^= 0x01
    docs[0]["spec"]["encryptedData"][key] = base64.b64encode(bytes(blob)).decode()
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def test_a_tampered_sealed_secret_is_degraded_with_the_controller_message(
    run: Any, demo: Any
) -> None:
    if not run.sync_times:
        pytest.skip("the first sync did not run")
    app = _cluster_app(run)
    path = run.gitops / "cluster" / "git-auth.sealedsecret.yaml"
    good = path.read_text()
    _tamper(path, "password")
    try:
        head = run.commit("e2e: a tampered ciphertext")
        run.argo().refresh(app)

        def degraded(st: Any) -> bool:
            res = st.resource("SealedSecret", "git-auth") or {}
            return st.revision == head and (res.get("health") or {}).get("status") == "Degraded"

        st = run.argo().wait_for(app, degraded, timeout=180, what="git-auth Degraded")
        message = st.resource("SealedSecret", "git-auth")["health"]["message"]
        obj = (
            run.argo()
            .kube("get", "sealedsecret", "git-auth", "-n", run.namespace, "-o", "json")
            .stdout
        )
        cond = next(c for c in json.loads(obj)["status"]["conditions"] if c["type"] == "Synced")
        assert cond["status"] == "False"
        assert message == cond["message"] and "decrypt" in message, message
        st = run.argo().wait_for(
            app, lambda s: s.health == "Degraded", timeout=60, what="app Degraded"
        )
        # The Secret keeps its last good value: the controller never writes a partial one.
        assert (
            demo.read_secret_values(run.api(), run.namespace, "git-auth") == run.inputs["git-auth"]
        )
    except (demo.StepFailed, demo.ArgoError) as err:
        _fail(run, err)
    finally:
        path.write_text(good)
        run.commit("e2e: the good ciphertext again")
        # The failed sync keeps retrying the tampered revision (retry.limit 5, backoff up to
        # 3m) and an automated sync of the fix waits for it: stop it, as a user would.
        run.argo().terminate(app)
        run.argo().refresh(app)
        run.argo().wait(app, timeout=300, revision=run.head)


def test_rotating_a_value_through_git(run: Any, demo: Any) -> None:
    if not run.sync_times:
        pytest.skip("the first sync did not run")
    app = _cluster_app(run)
    path = run.gitops / "cluster" / "vault-secrets.sealedsecret.yaml"
    new_value = "nst-rotated-" + secrets.token_urlsafe(12)
    try:
        run.log.run(
            [run.sealkit, "set", str(path), "name-service-token", "--cert", str(run.cert)],
            input_text=new_value,
        )
        assert new_value not in path.read_text()
        head = run.commit("e2e: rotate name-service-token")
        run.argo().refresh(app)
        st = run.argo().wait(app, timeout=400, revision=head)
        assert (st.sync, st.health) == ("Synced", "Healthy")
        values = demo.read_secret_values(run.api(), run.namespace, "vault-secrets")
        assert values["name-service-token"] == new_value
        # The hook ran again for this revision and wrote the new value.
        deadline = time.monotonic() + 120
        while _writes(run.hook_log()) == 0 and time.monotonic() < deadline:
            time.sleep(2)
        assert _writes(run.hook_log()) >= 1
        assert VaultView(run).snapshot()["kv"]["name-service-token"] == new_value
        run.inputs["vault-secrets"]["name-service-token"] = new_value
    except (demo.StepFailed, demo.ArgoError) as err:
        _fail(run, err)


def test_deleting_the_applications_prunes_the_secrets_and_leaves_vault(run: Any, demo: Any) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    if not run.sync_times:
        pytest.skip("the first sync did not run")
    vault = VaultView(run)
    before = vault.snapshot()
    for name in reversed(run.app_names()):
        run.argo().delete(name)
    core = client.CoreV1Api(run.api())

    def pruned() -> bool:
        for name in run.inputs:
            try:
                core.read_namespaced_secret(name, run.namespace)
                return False
            except ApiException as err:
                if err.status != 404:
                    raise
        return True

    assert demo.wait_for(pruned, 120), "the Secrets survived the Application's deletion"
    sealed = run.argo().kube("get", "sealedsecrets", "-n", run.namespace, "-o", "name").stdout
    assert sealed.strip() == ""
    # Vault (kept by Delete=false) is exactly as it was: deletion runs no hook.
    assert vault.snapshot() == before
