"""Real Argo CD on the stack: it syncs from the stack's Git server into the stack's apiserver.

Judged by Argo CD's own status (the Application's `.status`, written by its application
controller). The SealedSecret health rule is observed, not re-implemented: these tests move a
SealedSecret's status through the states and read the health Argo CD's embedded check gives.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parents[2]


def kubectl(stack: Any, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [stack.kubectl, "--kubeconfig", stack.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def crd(stack: Any) -> None:
    crd_file = str(ROOT / "deploy" / "crd.yaml")
    kubectl(stack, "apply", "--server-side", "--force-conflicts", "-f", crd_file)
    kubectl(
        stack,
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/sealedsecrets.bitnami.com",
    )


def push(stack: Any, tmp_path: Path, folder: str, docs: list[dict[str, Any]]) -> str:
    from devstack.gitrepo import WorkingCopy

    wc = WorkingCopy(stack.env["SEALKIT_GIT_URL"], tmp_path / "wc")
    wc.write(f"{folder}/resources.yaml", yaml.safe_dump_all(docs))
    return wc.commit_and_push(f"test: {folder}")


def application(stack: Any, name: str, folder: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": stack.env["SEALKIT_GIT_URL"],
                "targetRevision": "main",
                "path": folder,
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            "syncPolicy": {"automated": {"prune": True}},
        },
    }


def sealed_secret(name: str, namespace: str) -> dict[str, Any]:
    # Ciphertext no key opens; in these tests no controller watches the namespace anyway.
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "encryptedData": {"k": "AgBy3i4OJSWK+PiTySYZZA=="},
            "template": {"metadata": {"name": name, "namespace": namespace}},
        },
    }


def configmap(name: str, namespace: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"greeting": value},
    }


def test_argocd_syncs_configmaps_and_a_sealedsecret_from_the_stack_git_server(
    stack: Any, argocd: Any, crd: None, namespace: str, tmp_path: Path
) -> None:
    folder, app = f"tests/{namespace}", namespace
    head = push(
        stack,
        tmp_path,
        folder,
        [
            configmap("one", namespace, "hello"),
            configmap("two", namespace, "world"),
            sealed_secret("sealed", namespace),
        ],
    )
    argocd.apply([application(stack, app, folder, namespace)])
    try:
        # No controller unseals the SealedSecret here: it stays Progressing. The sync operation
        # still succeeds: nothing waits for the last (only) wave's health.
        st = argocd.wait_for(
            app,
            lambda s: (s.sync, s.revision, s.operation) == ("Synced", head, "Succeeded"),
            timeout=180,
            what=f"Synced at {head[:8]}",
        )
        assert st.health == "Progressing", st
        for kind, name in (("ConfigMap", "one"), ("ConfigMap", "two"), ("SealedSecret", "sealed")):
            res = st.resource(kind, name)
            assert res is not None and res["status"] == "Synced", (kind, name, st.resources)
        cm = json.loads(kubectl(stack, "get", "configmap", "two", "-n", namespace, "-o", "json"))
        assert cm["data"] == {"greeting": "world"}
        kubectl(stack, "get", "sealedsecret", "sealed", "-n", namespace)

        # A new commit: Argo CD syncs it (automated), and prunes what left Git.
        head2 = push(
            stack,
            tmp_path,
            folder,
            [configmap("one", namespace, "changed"), sealed_secret("sealed", namespace)],
        )
        argocd.refresh(app)
        st = argocd.wait_for(
            app,
            lambda s: (
                (s.sync, s.revision) == ("Synced", head2) and s.resource("ConfigMap", "two") is None
            ),
            timeout=180,
            what=f"Synced at {head2[:8]}",
        )
        assert st.resource("ConfigMap", "two") is None
        cm = json.loads(kubectl(stack, "get", "configmap", "one", "-n", namespace, "-o", "json"))
        assert cm["data"] == {"greeting": "changed"}
        gone = subprocess.run(
            [
                stack.kubectl,
                "--kubeconfig",
                stack.kubeconfig,
                "get",
                "configmap",
                "two",
                "-n",
                namespace,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        argocd.delete(app)


def _health(argocd: Any, app: str, name: str) -> tuple[str, str]:
    res = argocd.status(app).resource("SealedSecret", name) or {}
    health = res.get("health") or {}
    return health.get("status", ""), health.get("message", "")


def _patch_status(stack: Any, namespace: str, name: str, status: dict[str, Any]) -> None:
    kubectl(
        stack,
        "patch",
        "sealedsecret",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _expect(argocd: Any, app: str, name: str, health: str, timeout: float = 60) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    seen = ("", "")
    while time.monotonic() < deadline:
        seen = _health(argocd, app, name)
        if seen[0] == health:
            return seen
        argocd.refresh(app)
        time.sleep(1)
    raise AssertionError(f"Argo CD says {seen} for SealedSecret {name}, expected {health}")


def test_argocd_sealedsecret_health_as_observed(
    stack: Any, argocd: Any, crd: None, namespace: str, tmp_path: Path
) -> None:
    """What Argo CD's embedded `bitnami.com/SealedSecret` health check does, state by state."""
    folder, app, name = f"tests/{namespace}", namespace, "observed"
    head = push(stack, tmp_path, folder, [sealed_secret(name, namespace)])
    argocd.apply([application(stack, app, folder, namespace)])
    try:
        argocd.wait_for(
            app,
            lambda s: (s.sync, s.revision) == ("Synced", head),
            timeout=180,
            what=f"Synced at {head[:8]}",
        )
        time.sleep(3)
        obj = json.loads(kubectl(stack, "get", "sealedsecret", name, "-n", namespace, "-o", "json"))
        if obj.get("status"):
            pytest.skip("a SealedSecret controller watches this namespace; states cannot be set")
        gen = obj["metadata"]["generation"]

        # No status yet: Progressing.
        assert _expect(argocd, app, name, "Progressing") == (
            "Progressing",
            "Waiting for Sealed Secret to be decrypted",
        )
        # Synced=True for an older generation: still Progressing (v3.6.1 reads observedGeneration).
        now = "2026-01-01T00:00:00Z"
        synced = {
            "type": "Synced",
            "status": "True",
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }
        _patch_status(
            stack, namespace, name, {"observedGeneration": gen - 1, "conditions": [synced]}
        )
        time.sleep(5)
        argocd.refresh(app)
        time.sleep(3)
        assert _health(argocd, app, name)[0] == "Progressing"
        # Synced=True for this generation: Healthy.
        _patch_status(stack, namespace, name, {"observedGeneration": gen})
        _expect(argocd, app, name, "Healthy")
        assert (
            argocd.wait_for(app, lambda s: s.health == "Healthy", what="Healthy").health
            == "Healthy"
        )
        # Synced=False: Degraded, with the condition's message.
        failed = dict(synced, status="False", message="no key could decrypt secret (k)")
        _patch_status(stack, namespace, name, {"observedGeneration": gen, "conditions": [failed]})
        assert _expect(argocd, app, name, "Degraded") == (
            "Degraded",
            "no key could decrypt secret (k)",
        )
        assert (
            argocd.wait_for(app, lambda s: s.health == "Degraded", what="Degraded").health
            == "Degraded"
        )
    finally:
        argocd.delete(app)
