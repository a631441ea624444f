"""The committed examples: valid for the real apiserver, for Argo CD, and free of plaintext.

- every manifest whose kind the stack knows passes a server-side dry-run apply (stack);
- the Argo CD Applications, whose CRD is not installed, match the fields Argo CD documents;
- `sealkit scan examples/` passes, and would catch a plaintext Secret;
- the sync order, the hook, and the Job's environment agree with the bootstrap config.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GITOPS = EXAMPLES / "welcome-message-gitops"
SEALKIT = str(Path(sys.executable).parent / "sealkit")


def manifest_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


def k8s_docs(path: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects of a file (config files such as chapter.yaml have no kind)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return [d for d in docs if "apiVersion" in d and "kind" in d and d["kind"] != "Kustomization"]


def kustomize_dirs() -> list[Path]:
    return sorted(p.parent for p in EXAMPLES.rglob("kustomization.yaml"))


def all_docs() -> list[dict[str, Any]]:
    return [d for p in manifest_files() for d in k8s_docs(p)]


# --------------------------------------------------------------------------- Argo CD schema

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_SOURCE = {
    "type": "object",
    "required": ["repoURL"],
    "additionalProperties": False,
    "properties": {
        "repoURL": {"type": "string", "pattern": r"^(https?|ssh|git)://|^git@"},
        "path": {"type": "string", "pattern": r"^[^/]"},
        "targetRevision": {"type": "string", "minLength": 1},
        "chart": {"type": "string"},
        "ref": {"type": "string"},
        "name": {"type": "string"},
        "directory": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "recurse": {"type": "boolean"},
                "include": {"type": "string"},
                "exclude": {"type": "string"},
                "jsonnet": {"type": "object"},
            },
        },
        "helm": {"type": "object"},
        "kustomize": {"type": "object"},
        "plugin": {"type": "object"},
    },
}
_SYNC_OPTIONS = [
    "Validate=false",
    "Validate=true",
    "CreateNamespace=true",
    "PrunePropagationPolicy=foreground",
    "PrunePropagationPolicy=background",
    "PrunePropagationPolicy=orphan",
    "PruneLast=true",
    "ApplyOutOfSyncOnly=true",
    "Replace=true",
    "ServerSideApply=true",
    "ServerSideApply=false",
    "FailOnSharedResource=true",
    "RespectIgnoreDifferences=true",
    "SkipDryRunOnMissingResource=true",
]
# The fields of argoproj.io/v1alpha1 Application that Argo CD's documentation describes
# (declarative setup, automated sync policy, sync options, retry); unknown fields are refused.
APPLICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "argoproj.io/v1alpha1"},
        "kind": {"const": "Application"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": _NAME,
                "namespace": _NAME,
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {
                    "type": "array",
                    "items": {
                        "enum": [
                            "resources-finalizer.argocd.argoproj.io",
                            "resources-finalizer.argocd.argoproj.io/background",
                            "resources-finalizer.argocd.argoproj.io/foreground",
                        ]
                    },
                },
            },
        },
        "spec": {
            "type": "object",
            "required": ["project", "destination"],
            "additionalProperties": False,
            "oneOf": [{"required": ["source"]}, {"required": ["sources"]}],
            "properties": {
                "project": {"type": "string", "minLength": 1},
                "source": _SOURCE,
                "sources": {"type": "array", "items": _SOURCE, "minItems": 1},
                "destination": {
                    "type": "object",
                    "additionalProperties": False,
                    "oneOf": [{"required": ["server"]}, {"required": ["name"]}],
                    "properties": {
                        "server": {"type": "string", "pattern": r"^https://"},
                        "name": {"type": "string"},
                        "namespace": _NAME,
                    },
                },
                "syncPolicy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "automated": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "prune": {"type": "boolean"},
                                "selfHeal": {"type": "boolean"},
                                "allowEmpty": {"type": "boolean"},
                                "enabled": {"type": "boolean"},
                            },
                        },
                        "syncOptions": {"type": "array", "items": {"enum": _SYNC_OPTIONS}},
                        "managedNamespaceMetadata": {"type": "object"},
                        "retry": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "limit": {"type": "integer"},
                                "backoff": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "duration": {"type": "string"},
                                        "factor": {"type": "integer"},
                                        "maxDuration": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
                "ignoreDifferences": {"type": "array"},
                "info": {"type": "array"},
                "revisionHistoryLimit": {"type": "integer"},
            },
        },
    },
}


def applications() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted((GITOPS / "gitops").glob("*.yaml")) for d in k8s_docs(p)]


def test_argocd_applications_match_the_documented_fields(demo):
    apps = applications()
    assert {d["metadata"]["name"] for _, d in apps} == {
        "welcome-message-cluster",
        "welcome-message-apps",
    }
    for path, doc in apps:
        jsonschema.validate(doc, APPLICATION_SCHEMA)
        automated = doc["spec"]["syncPolicy"]["automated"]
        assert automated == {"prune": True, "selfHeal": True}, path.name
        # The path must be a folder of this repository with manifests in it.
        folder = ROOT / doc["spec"]["source"]["path"]
        assert folder.is_dir() and any(folder.glob("*.yaml")), path.name
    waves = {d["metadata"]["name"]: int(demo.annotations(d).get(demo.WAVE, "0")) for _, d in apps}
    assert waves["welcome-message-cluster"] < waves["welcome-message-apps"]


def test_the_application_schema_rejects_what_argocd_would():
    """The schema is not a rubber stamp: typical mistakes fail it."""
    _, good = applications()[0]
    bad_cases = []
    for mutate in (
        lambda d: d["spec"]["syncPolicy"]["automated"].update(selfheal=True),  # wrong case
        lambda d: d["spec"].pop("project"),
        lambda d: d["spec"]["destination"].pop("server"),
        lambda d: d.update(apiVersion="argoproj.io/v1"),
        lambda d: d["spec"]["syncPolicy"].update(syncOptions=["ServerSideApply=yes"]),
        lambda d: d["spec"]["source"].update(repoUrl="https://x"),
    ):
        doc = yaml.safe_load(yaml.safe_dump(good))
        mutate(doc)
        bad_cases.append(doc)
    for doc in bad_cases:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, APPLICATION_SCHEMA)


# --------------------------------------------------------------------------- no plaintext


def test_sealkit_scan_passes_on_examples():
    proc = subprocess.run(
        [SEALKIT, "scan", str(EXAMPLES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sealkit_scan_would_catch_a_plaintext_secret_in_the_example(tmp_path):
    copy = tmp_path / "welcome-message-gitops"
    import shutil

    shutil.copytree(GITOPS, copy)
    leaked = "do-not-print-me-4711"
    (copy / "cluster" / "oops.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "vault-secrets-plain", "namespace": "default"},
                "stringData": {"vault-token": leaked},
            }
        )
    )
    proc = subprocess.run(
        [SEALKIT, "scan", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "oops.yaml" in out and "vault-secrets-plain" in out
    assert leaked not in out


def test_no_plaintext_secret_and_every_secret_is_sealed():
    kinds = [(d["kind"], d["metadata"]["name"]) for d in all_docs()]
    assert not [k for k in kinds if k[0] == "Secret"], "a plaintext Secret in examples/"
    sealed = {n for k, n in kinds if k == "SealedSecret"}
    assert {"vault-secrets", "git-auth", "postgresql-auth"} <= sealed


def test_committed_sealed_secrets_are_well_formed_for_the_demo_certificate():
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((GITOPS / "demo-cert.pem").read_bytes())
    modulus_bytes = cert.public_key().key_size // 8
    docs = [d for d in all_docs() if d["kind"] == "SealedSecret"]
    for doc in docs:
        assert doc["apiVersion"] == "bitnami.com/v1alpha1"
        tmeta = doc["spec"]["template"]["metadata"]
        assert (tmeta["name"], tmeta["namespace"]) == (
            doc["metadata"]["name"],
            doc["metadata"]["namespace"],
        )
        for value in doc["spec"]["encryptedData"].values():
            blob = base64.b64decode(value, validate=True)
            assert int.from_bytes(blob[:2], "big") == modulus_bytes  # RSA-OAEP block size
            assert len(blob) > 2 + modulus_bytes + 16
    git_auth = next(d for d in docs if d["metadata"]["name"] == "git-auth")
    assert git_auth["spec"]["template"]["type"] == "kubernetes.io/basic-auth"
    assert set(git_auth["spec"]["encryptedData"]) == {"username", "password"}
    vault = next(d for d in docs if d["metadata"]["name"] == "vault-secrets")
    assert set(vault["spec"]["encryptedData"]) == {"vault-token", "name-service-token"}


def test_no_private_key_is_committed():
    for path in EXAMPLES.rglob("*"):
        if path.is_file():
            assert "PRIVATE KEY-----" not in path.read_text(errors="replace"), path


# --------------------------------------------------------------------------- order and hook


def test_the_example_declares_its_waves_and_hook(demo):
    """What the example asks Argo CD for (Argo CD itself orders and runs it: test_e2e_argocd)."""
    docs = demo.load_manifests(GITOPS / "cluster")
    waves = {
        (d["kind"], d["metadata"]["name"]): int(demo.annotations(d).get(demo.WAVE, "0"))
        for d in docs
    }
    assert {n for (k, n), w in waves.items() if k == "SealedSecret" and w == -5} == {
        "git-auth",
        "postgresql-auth",
        "vault-secrets",
    }
    assert waves[("StatefulSet", "postgresql")] == -3 and waves[("Deployment", "vault")] == -2
    (job,) = [d for d in docs if d["kind"] == "Job"]
    ann = job["metadata"]["annotations"]
    assert ann["argocd.argoproj.io/hook"] == "PostSync"
    assert ann["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert 0 < job["spec"]["backoffLimit"] <= 3


ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
INTERP = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")  # without a `:-default`


def required_env(node: Any) -> set[str]:
    """Environment variables a vault-bootstrap config cannot do without."""
    if isinstance(node, dict):
        return set().union(*(required_env(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(required_env(v) for v in node))
    if isinstance(node, str):
        return set(ENV_REF.findall(node)) | set(INTERP.findall(node))
    return set()


def _bootstrap_config() -> str:
    cm = next(d for d in k8s_docs(GITOPS / "cluster" / "vault-bootstrap-configmap.yaml"))
    return cm["data"]["bootstrap.yaml"]


def test_the_job_environment_provides_every_reference_of_the_config():
    job = next(d for d in k8s_docs(GITOPS / "cluster" / "vault-bootstrap-job.yaml"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    provided = {e["name"] for e in container["env"]}
    needed = required_env(yaml.safe_load(_bootstrap_config()))
    assert needed and needed <= provided, sorted(needed - provided)
    # Secret inputs come from the unsealed Secrets, never as literal values.
    for item in container["env"]:
        if item["name"] in {"VAULT_TOKEN", "NAME_SERVICE_TOKEN", "PGPASSWORD"}:
            assert "secretKeyRef" in item.get("valueFrom", {}), item["name"]
    assert container["command"][:2] == ["vault-bootstrap", "apply"]
    assert "VAULT_ADDR" in provided


def test_the_bootstrap_config_validates():
    from vault_bootstrap._config import parse_config

    config = parse_config(yaml.safe_load(_bootstrap_config()), source="bootstrap.yaml")
    role = config.auth["kubernetes"].roles["welcome-message"]
    assert role.bound_service_account_names == ["welcome-message"]
    assert role.bound_service_account_namespaces == ["${env:WELCOME_NAMESPACE:-default}"]


def test_the_configmap_mirrors_the_chapter_config():
    """The PostSync Job runs the same setup as examples/vault-bootstrap/chapter.yaml."""
    chapter = EXAMPLES / "vault-bootstrap" / "chapter.yaml"
    if not chapter.exists():
        pytest.fail("examples/vault-bootstrap/chapter.yaml is missing")
    assert _bootstrap_config() == chapter.read_text(), (
        "the ConfigMap drifted from chapter.yaml: run `.venv/bin/python scripts/demo.py "
        "sync-config`"
    )


# --------------------------------------------------------------------------- the real apiserver


_CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace", "CustomResourceDefinition"}


def isolated(docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The docs moved into ``namespace``, cluster-scoped ones renamed with its name.

    A running demo (`make demo`) owns the same objects in `default` under Argo CD's field
    manager; a dry-run apply over them would be a server-side apply conflict, not a finding.
    """
    out = []
    for doc in docs:
        doc = {**doc, "metadata": dict(doc.get("metadata") or {})}
        if doc["kind"] in _CLUSTER_SCOPED:
            doc["metadata"]["name"] = f"{doc['metadata']['name']}-{namespace}"
        else:
            doc["metadata"]["namespace"] = namespace
        out.append(doc)
    return out


def dry_run_examples(kubectl: str, kubeconfig: str, namespace: str) -> set[str]:
    """Server-side dry-run of every known example manifest, isolated in ``namespace``.

    Returns the kinds checked. Also run by `test_e2e_demo_script` right after `make demo`.
    """
    checked: list[str] = []

    def dry_run(source: str, docs: list[dict[str, Any]]) -> None:
        argv = [
            kubectl,
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager",
            f"test-dry-run-{namespace}",
            "-f",
            "-",
        ]
        text = yaml.safe_dump_all(isolated(docs, namespace))
        proc = subprocess.run(
            argv, input=text, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, f"{source}: {proc.stderr.strip()}"
        checked.extend(f"{d['kind']}/{d['metadata']['name']}" for d in docs)

    # Kustomize folders are checked as Argo CD applies them: rendered first.
    kustomized = kustomize_dirs()
    for folder in kustomized:
        proc = subprocess.run(
            [kubectl, "kustomize", str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        dry_run(str(folder.relative_to(ROOT)), docs)
    for path in manifest_files():
        if any(folder in path.parents for folder in kustomized):
            continue
        docs = [d for d in k8s_docs(path) if not d["apiVersion"].startswith("argoproj.io/")]
        if docs:
            dry_run(str(path.relative_to(ROOT)), docs)
    return {c.split("/")[0] for c in checked}


@pytest.mark.stack
def test_every_known_manifest_passes_a_server_side_dry_run(
    stack, kubectl_path, demo, tmp_path, namespace
):
    from devstack.testing import require

    require(stack, "kube")
    log = demo.Log(tmp_path / "dry-run.log")
    try:
        demo.install_crd(kubectl_path, stack.kubeconfig, log)
    except demo.StepFailed as err:
        pytest.fail(f"{err}\n{log.path.read_text()}", pytrace=False)
    kinds = dry_run_examples(kubectl_path, stack.kubeconfig, namespace)
    assert {
        "SealedSecret",
        "Deployment",
        "StatefulSet",
        "Service",
        "Job",
        "ConfigMap",
        "ServiceAccount",
        "ClusterRoleBinding",
    } <= kinds


def test_isolation_moves_every_object_away_from_the_demo():
    """What the dry-run applies never names an object of the demo (`make demo` may be up)."""
    docs = [
        d
        for p in manifest_files()
        for d in k8s_docs(p)
        if not d["apiVersion"].startswith("argoproj.io/")
    ]
    demo_objects = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs
    }
    moved = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in isolated(docs, "t-ns")
    }
    assert docs and not demo_objects & moved


@pytest.mark.stack
def test_dry_run_rejects_a_broken_manifest(stack, kubectl_path, tmp_path):
    """The dry-run check can fail: a SealedSecret without encryptedData is refused by the CRD."""
    from devstack.testing import require

    require(stack, "kube")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "bitnami.com/v1alpha1",
                "kind": "SealedSecret",
                "metadata": {"name": "broken", "namespace": "default"},
                "spec": {"template": {}},
            }
        )
    )
    proc = subprocess.run(
        [
            kubectl_path,
            "--kubeconfig",
            stack.kubeconfig,
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0


def test_working_copy_moves_the_example_to_another_namespace(demo, tmp_path):
    """The e2e runs in a private namespace: every reference to `default` must follow."""
    copy = demo.make_working_copy(tmp_path / "gitops", "e2e-x")
    docs = [d for f in ("apps", "cluster") for d in demo.load_manifests(copy / f)]
    text = yaml.safe_dump_all(docs)
    assert "namespace: default" not in text
    # Only the apiserver's own Service keeps `default` (it lives there in every cluster).
    assert text.replace("kubernetes.default.svc", "").count(".default.svc") == 0
    for doc in docs:
        if doc["kind"] == "ClusterRoleBinding":
            assert doc["metadata"]["name"].endswith("-e2e-x")
            assert {s["namespace"] for s in doc["subjects"]} == {"e2e-x"}
        else:
            assert doc["metadata"]["namespace"] == "e2e-x"
        if doc["kind"] == "SealedSecret":
            assert doc["spec"]["template"]["metadata"]["namespace"] == "e2e-x"
            assert doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-5"
    job = next(d for d in docs if d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WELCOME_NAMESPACE"] == "e2e-x"
    assert env["VAULT_ADDR"] == "http://vault.e2e-x.svc:8200"
    assert env["KUBE_APISERVER_URL"] == "https://kubernetes.default.svc"
    assert not list(copy.rglob("*.md")) and not list(copy.rglob("*.pem"))
    # Header comments survive the rewrite.
    assert (copy / "cluster" / "vault-bootstrap-job.yaml").read_text().startswith("# The Vault")


def test_the_working_copy_switches_to_hashicorp_vault_and_the_overlay_swaps_it(demo, tmp_path):
    """`make demo SEALKIT_VAULT=vault`: only the Vault Deployment's image and its dev root token
    variable change (Vault reads VAULT_DEV_ROOT_TOKEN_ID, OpenBao BAO_DEV_ROOT_TOKEN_ID); then
    the image swap points it at the stack's own Vault image."""
    from devstack import images

    copy = demo.make_working_copy(tmp_path / "gitops")
    before = {p.name: p.read_text() for p in (copy / "cluster").glob("*.yaml")}
    demo.use_hashicorp_vault(copy, images.VAULT_USER_IMAGE)
    after = {p.name: p.read_text() for p in (copy / "cluster").glob("*.yaml")}
    assert [n for n in before if before[n] != after[n]] == ["vault-deployment.yaml"]
    deployment = next(
        d
        for d in demo.load_manifests(copy / "cluster")
        if d["metadata"]["name"] == "vault" and d["kind"] == "Deployment"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"hashicorp/vault:{images.VAULT_TAG}"
    assert [e["name"] for e in container["env"]] == ["VAULT_DEV_ROOT_TOKEN_ID"]
    assert container["args"] == ["server", "-dev", "-dev-listen-address=0.0.0.0:8200"]
    swapped = demo.swap_images(copy, demo.stack_images())
    assert f"hashicorp/vault -> {images.VAULT_DEMO_IMAGE}" in swapped


def test_secret_for_rebuilds_the_plaintext_secret_from_the_template(demo):
    sealed = next(d for d in k8s_docs(GITOPS / "cluster" / "git-auth.sealedsecret.yaml"))
    secret = demo.secret_for(sealed, {"username": "u", "password": "p"})
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["metadata"]["annotations"] == {"tekton.dev/git-0": "https://git.example.com"}
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == ("git-auth", "default")
    with pytest.raises(demo.StepFailed, match="do not match its keys"):
        demo.secret_for(sealed, {"username": "u"})
    resealed = demo.keep_outer_metadata(sealed, {"metadata": {"name": "git-auth"}})
    assert resealed["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-5"


def test_a_failed_demo_step_is_one_line_naming_the_step(demo, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("sealkit_demo_cli", ROOT / "scripts" / "demo.py")
    assert spec and spec.loader
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    rep = cli.Reporter(8, cli.wt.Log(tmp_path / "log"))
    with rep.step("stack", "the stack"):
        pass
    with pytest.raises(cli.wt.StepFailed) as err, rep.step("seal", "seal the secrets"):
        raise cli.wt.StepFailed("sealkit exited 1: error: cannot fetch certificate")
    assert str(err.value) == "step 2/8 (seal): sealkit exited 1: error: cannot fetch certificate"
    assert "\n" not in str(err.value)
    assert "[2/8] seal the secrets ..." in capsys.readouterr().out
