"""The PostSync Job example: hook annotations, config from the chapter file, secret inputs
from the unsealed Secret, no plaintext Secret committed; accepted by the real apiserver."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from vb_helpers import CHAPTER, require

EXAMPLE = CHAPTER.parent


def _render(kubectl: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl, "kustomize", str(EXAMPLE)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    from devstack import binaries

    try:
        kubectl = binaries.kubectl()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"kubectl unavailable: {exc}")
    return _render(str(kubectl))


def test_job_is_a_postsync_hook_with_small_backoff(docs: list[dict[str, Any]]) -> None:
    (job,) = [d for d in docs if d["kind"] == "Job"]
    ann = job["metadata"]["annotations"]
    assert ann["argocd.argoproj.io/hook"] == "PostSync"
    assert ann["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert 0 < job["spec"]["backoffLimit"] <= 3
    assert job["spec"]["activeDeadlineSeconds"] > 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"] == ["vault-bootstrap"]
    assert "apply" in container["args"] and "/config/chapter.yaml" in container["args"]
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert secret_env == {
        "VAULT_TOKEN": "vault-bootstrap-inputs",
        "PGPASSWORD": "vault-bootstrap-inputs",
        "NAME_SERVICE_TOKEN": "vault-bootstrap-inputs",
    }
    plain = {e["name"] for e in container["env"] if "value" in e}
    assert {"VAULT_ADDR", "KUBE_APISERVER_URL", "KUBE_CA_FILE", "PGHOST", "PGPORT"} <= plain


def test_config_map_carries_the_chapter_file(docs: list[dict[str, Any]]) -> None:
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert cm["data"]["chapter.yaml"] == CHAPTER.read_text()
    (job,) = [d for d in docs if d["kind"] == "Job"]
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == cm["metadata"]["name"]


def test_no_plaintext_secret_committed() -> None:
    for path in EXAMPLE.glob("*.y*ml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                assert not doc.get("data") and not doc.get("stringData"), path


@pytest.mark.stack
def test_rendered_manifests_pass_server_side_dry_run(
    stack: Any, namespace: str, tmp_path: Path
) -> None:
    require(stack, "kube", "kubectl")
    docs = [d for d in _render(stack.kubectl) if d["kind"] != "ClusterRoleBinding"]
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    proc = subprocess.run(
        [
            stack.kubectl,
            "--kubeconfig",
            stack.kubeconfig,
            "apply",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "job.batch/vault-bootstrap created (server dry run)" in proc.stdout
