"""`helm template | kubeconform -strict` against the stack's own OpenAPI schemas, and the real
apiserver's server-side dry run of the same output.

The schemas come from the running stack's `/openapi/v2` (converted by `_kubeschemas`), after the
ServiceMonitor CRD (prometheus-operator's, from its module source) is installed, so every kind the
chart can render has the schema of the apiserver we test on. A deliberately misspelt field must
fail, so the check is known to bite.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helmtools import helm_template, kubeconform, servicemonitor_crd
from _kubeschemas import SCHEMA_LOCATION, write_schemas

pytestmark = pytest.mark.stack

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything-on": {
        "networkPolicy": {
            "enabled": True,
            "egress": {"enabled": True, "kubeapiCidr": "10.0.0.1/32", "kubeapiPort": 6443},
        },
        "metrics": {
            "serviceMonitor": {"enabled": True, "interval": "30s"},
            "dashboards": {"create": True},
        },
        "pdb": {"maxUnavailable": 1},
        "resources": {"limits": {"cpu": 1, "memory": "512Mi"}},
    },
    "namespaced": {"rbac": {"namespacedRoles": True}, "additionalNamespaces": ["team-a", "b"]},
    "single": {"replicaCount": 1, "leaderElection": {"enabled": False}, "fullnameOverride": ""},
}


def _kubectl(
    kubectl: str, kubeconfig: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def schemas(
    stack: Any, kube_api: Any, kubectl_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    crd = servicemonitor_crd()
    applied = _kubectl(
        kubectl_path,
        stack.kubeconfig,
        "apply",
        "--server-side",
        "--field-manager=sealkit-tests",
        "-f",
        str(crd),
    )
    assert applied.returncode == 0, applied.stderr
    waited = _kubectl(
        kubectl_path,
        stack.kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
    )
    assert waited.returncode == 0, waited.stderr
    target = tmp_path_factory.mktemp("schemas")
    for _ in range(30):  # the aggregated OpenAPI document picks a new CRD up within seconds
        response = kube_api.call_api(
            "/openapi/v2",
            "GET",
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=60,
        )
        body = (response[0] if isinstance(response, tuple) else response).data
        doc = json.loads(body)
        if any(
            g.get("kind") == "ServiceMonitor"
            for d in doc["definitions"].values()
            for g in d.get("x-kubernetes-group-version-kind", [])
        ):
            break
        time.sleep(1)
    assert write_schemas(doc, target) > 100
    assert (target / "servicemonitor_monitoring.coreos.com_v1.json").is_file()
    assert (target / "deployment_apps_v1.json").is_file()
    return target


def _conform(schemas: Path, manifests: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            kubeconform(),
            "-strict",
            "-summary",
            "-output",
            "text",
            "-schema-location",
            str(schemas / SCHEMA_LOCATION),
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_template_passes_kubeconform(schemas: Path, variant: str) -> None:
    docs = helm_template(values=VARIANTS[variant], tests=True)
    proc = _conform(schemas, yaml.safe_dump_all(docs))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Valid: {len(docs)}, Invalid: 0, Errors: 0, Skipped: 0" in proc.stdout, proc.stdout


def test_kubeconform_with_these_schemas_catches_a_misspelt_field(schemas: Path) -> None:
    docs = helm_template()
    dep = next(d for d in docs if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    proc = _conform(schemas, yaml.safe_dump_all(docs))
    assert proc.returncode != 0
    assert "imagePullPolicyy" in proc.stdout, proc.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_template_passes_a_server_side_dry_run(
    schemas: Path, stack: Any, kubectl_path: str, variant: str, namespace: str
) -> None:
    docs = [d for d in helm_template(values=VARIANTS[variant], tests=True, crds=False)]
    # Tenant namespaces need not exist for a dry run of cluster-scoped objects; namespaced ones
    # are sent to this test's fresh namespace to keep the verdict about the objects themselves:
    # in kube-system a server-side apply merged them into what other installs left there (seen:
    # a real PDB with minAvailable plus this variant's maxUnavailable, refused as both set).
    seen: set[tuple[str, str]] = set()
    for d in docs:
        if d["metadata"].get("namespace") is not None:
            d["metadata"]["namespace"] = namespace
            if (d["kind"], d["metadata"]["name"]) in seen:  # the same name from two namespaces
                d["metadata"]["name"] += f"-x{len(seen)}"
            seen.add((d["kind"], d["metadata"]["name"]))
    proc = _kubectl(
        kubectl_path,
        stack.kubeconfig,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=sealkit-tests",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(docs),
    )
    assert proc.returncode == 0, proc.stderr
    applied = [line for line in proc.stdout.splitlines() if "serverside-applied" in line]
    assert len(applied) == len(docs), proc.stdout
