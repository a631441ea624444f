"""charts/sealkit: `helm lint`, and `helm template` renders exactly what deploy/ renders.

Same objects (kind, namespace, name) and the same content, for the defaults and for each option
that deploy/ offers as a kustomize component (namespaced Roles with a tenant, NetworkPolicy,
ServiceMonitor); the only allowed difference is Helm's bookkeeping labels. Upstream's values keys
carry over; the Grafana dashboard queries only metrics the controller exports.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helmtools import CHART, DEPLOY, by_key, helm, helm_template, kustomize, upstream_chart

from devstack import binaries


@pytest.fixture(scope="module")
def kubectl() -> str:
    try:
        return binaries.kubectl()
    except binaries.MissingComponent as err:
        from devstack.testing import unavailable

        unavailable(str(err))
        raise


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm(), "lint", "--strict", str(CHART), *args], capture_output=True, text=True, timeout=120
    )


def test_helm_lint_is_clean() -> None:
    proc = _lint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout
    # A broken values combination stops rendering with one clear line (`helm lint` reports a
    # template's `fail` as INFO only, so ask `helm template`).
    bad = subprocess.run(
        [
            helm(),
            "template",
            "x",
            str(CHART),
            "--kube-version",
            "1.36.3",
            "--set",
            "leaderElection.enabled=false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "needs replicaCount: 1" in bad.stderr


def _same(chart: list[dict[str, Any]], deploy: list[dict[str, Any]]) -> None:
    got, want = by_key(chart, strip_helm=True), by_key(deploy)
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], key


def test_defaults_render_the_same_objects_as_deploy(kubectl: str, tmp_path: Path) -> None:
    chart = helm_template()
    _same(chart, kustomize(kubectl, tmp_path))
    kinds = sorted(d["kind"] for d in chart)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
        ]
    )
    # The Helm labels are really there (so stripping them is not hiding anything else).
    dep = by_key(chart)[("Deployment", "kube-system", "sealed-secrets-controller")]
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_the_crd_is_the_same_file_and_never_a_template() -> None:
    # Helm installs crds/ once and never upgrades or deletes it: `helm uninstall` must not take
    # every SealedSecret (and, through ownerReferences, every Secret) with it.
    assert (CHART / "crds" / "sealedsecrets.bitnami.com.yaml").read_text() == (
        DEPLOY / "crd.yaml"
    ).read_text()
    assert not any(
        "CustomResourceDefinition" in p.read_text() for p in (CHART / "templates").rglob("*.yaml")
    )


def test_namespaced_roles_render_the_same_as_the_component(kubectl: str, tmp_path: Path) -> None:
    chart = helm_template(
        values={"rbac": {"namespacedRoles": True}, "additionalNamespaces": ["team-b"]}
    )
    _same(chart, kustomize(kubectl, tmp_path, components=("namespaced",), tenant="team-b"))
    roles = [
        d for d in chart if d["kind"] == "Role" and d["metadata"]["name"].endswith("-unsealer")
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["kube-system", "team-b"]


def test_the_namespaced_component_needs_its_tenant(kubectl: str, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="sealkit-tenant"):
        kustomize(kubectl, tmp_path, components=("namespaced",))


@pytest.mark.parametrize(
    ("component", "values"),
    [
        ("networkpolicy", {"networkPolicy": {"enabled": True}}),
        ("servicemonitor", {"metrics": {"serviceMonitor": {"enabled": True}}}),
    ],
)
def test_opt_in_objects_render_the_same_as_the_components(
    kubectl: str, tmp_path: Path, component: str, values: dict[str, Any]
) -> None:
    _same(helm_template(values=values), kustomize(kubectl, tmp_path, components=(component,)))


def test_metrics_service_carries_the_label_servicemonitors_select() -> None:
    docs = by_key(helm_template(values={"metrics": {"serviceMonitor": {"enabled": True}}}))
    svc = docs[("Service", "kube-system", "sealed-secrets-controller-metrics")]
    monitor = docs[("ServiceMonitor", "kube-system", "sealed-secrets-controller")]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "metrics"
    assert selector.items() <= svc["metadata"]["labels"].items()
    app = docs[("Service", "kube-system", "sealed-secrets-controller")]
    assert not selector.items() <= app["metadata"]["labels"].items()


def test_names_never_collide_with_upstreams_chart() -> None:
    """Upstream's chart, default release and the `fullnameOverride` its README suggests."""
    ours = {(k[0], k[2]) for k in by_key(helm_template(crds=False))}
    for release, extra in (
        ("sealed-secrets", []),
        ("sealed-secrets", ["--set", "fullnameOverride=sealed-secrets"]),
    ):
        theirs = {
            (k[0], k[2])
            for k in by_key(
                helm_template(*extra, release=release, chart=upstream_chart(), crds=False)
            )
        }
        assert theirs and not ours & theirs, ours & theirs
    # With fullnameOverride=sealed-secrets-controller only what kubeseal looks up by name may
    # coincide (docs/migration.md gives the order for that case).
    theirs = {
        (k[0], k[2])
        for k in by_key(
            helm_template(
                "--set",
                "fullnameOverride=sealed-secrets-controller",
                release="sealed-secrets",
                chart=upstream_chart(),
                crds=False,
            )
        )
    }
    assert not {
        k
        for k in ours & theirs
        if k[0] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    }


def test_upstream_values_keys_carry_over() -> None:
    values = {
        "fullnameOverride": "sealed-secrets",
        "image": {
            "registry": "registry.example.com",
            "repository": "sec/sealkit",
            "tag": "9.9.9",
            "pullSecrets": ["regcred"],
        },
        "imagePullSecrets": [{"name": "other"}],
        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}},
        "podSecurityContext": {"enabled": True, "fsGroup": 65534},
        "containerSecurityContext": {"enabled": False},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "pool", "operator": "In", "values": ["infra"]}
                            ]
                        }
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "keyrenewperiod": "0",
        "secretName": "my-keys",
        "additionalNamespaces": ["a", "b"],
        "serviceAccount": {"name": "ss-sa", "annotations": {"iam": "role"}},
        "rbac": {"labels": {"team": "sec"}, "serviceProxier": {"bind": False}},
        "networkPolicy": {
            "enabled": True,
            "egress": {"enabled": True, "kubeapiCidr": "10.0.0.1/32", "kubeapiPort": 6443},
        },
        "metrics": {
            "serviceMonitor": {"enabled": True, "interval": "30s", "labels": {"release": "prom"}}
        },
        "privateKeyLabels": {"backup": "yes"},
        "logLevel": "DEBUG",
        "replicaCount": 3,
    }
    docs = by_key(helm_template(namespace="sec", values=values))
    dep = docs[("Deployment", "sec", "sealed-secrets")]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "registry.example.com/sec/sealkit:9.9.9"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    # Helm merges a values file over the defaults: the default requests stay.
    assert c["resources"] == {**values["resources"], "requests": {"cpu": "50m", "memory": "96Mi"}}
    assert pod["securityContext"]["fsGroup"] == 65534 and "securityContext" not in c
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["serviceAccountName"] == "ss-sa"
    assert dep["spec"]["replicas"] == 3
    for arg in (
        "--key-renew-period=0",
        "--key-prefix=my-keys",
        "--log-level=DEBUG",
        "--privatekey-labels=backup=yes",
        "--leader-election-id=sealed-secrets",
    ):
        assert arg in c["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SEALED_SECRETS_ADDITIONAL_NAMESPACES"] == "a,b"
    assert docs[("ServiceAccount", "sec", "ss-sa")]["metadata"]["annotations"] == {"iam": "role"}
    keys = docs[("Role", "sec", "sealed-secrets-keys")]
    assert keys["metadata"]["labels"]["team"] == "sec"
    assert [r for r in keys["rules"] if r.get("resourceNames")][0]["resourceNames"] == [
        "sealed-secrets"
    ]
    assert ("RoleBinding", "sec", "sealed-secrets-proxy-users") not in docs
    proxy = docs[("Role", "sec", "sealed-secrets-proxy-users")]
    assert "http:sealed-secrets:http" in proxy["rules"][1]["resourceNames"]
    netpol = docs[("NetworkPolicy", "sec", "sealed-secrets")]
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert netpol["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 6443}]}
    ]
    monitor = docs[("ServiceMonitor", "sec", "sealed-secrets")]
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert docs[("PodDisruptionBudget", "sec", "sealed-secrets")]["spec"]["minAvailable"] == 1


def test_upstreams_own_values_file_renders() -> None:
    """Upstream's complete values.yaml, as a user might pass it: it renders, and the keys we
    have take effect (its image is Bitnami's: docs/migration.md says to drop `image`)."""
    upstream = yaml.safe_load((upstream_chart() / "values.yaml").read_text())
    docs = helm_template(values=upstream, release="sealed-secrets")
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["metadata"]["name"] == "sealed-secrets-sealkit"  # its fullnameOverride is ""
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == 65534
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"} == {
        "secrets-unsealer"
    }  # its explicit clusterRoleName wins


def test_leader_election_off_means_one_replica_and_no_pdb() -> None:
    docs = helm_template(values={"leaderElection": {"enabled": False}, "replicaCount": 1})
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 1
    assert "--leader-elect=false" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]


def test_helm_test_pod_is_a_hook_that_uses_the_service_proxy() -> None:
    docs = helm_template(tests=True, crds=False)
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    compile(script, "helm-test", "exec")  # valid Python after templating
    assert '"--controller-name", "sealed-secrets-controller"' in script
    assert "--validate" in script and "keygen" in script


# -- Grafana dashboard ---------------------------------------------------------------------------
def _exported_names() -> set[str]:
    from controller.metrics import Metrics

    names: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",),
            "info": ("_info",),
        }.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    (path,) = (CHART / "dashboards").glob("*.json")
    dash = json.loads(path.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {
        m
        for e in exprs
        for m in re.findall(
            r"\b((?:sealed_secrets_controller|sealkit|leader_election|process|python)_[a-z_]+)", e
        )
    }
    assert used - _exported_names() == set()
    # Upstream's names plus ours, and the generic process panels.
    for needed in (
        "sealed_secrets_controller_unseal_requests_total",
        "sealed_secrets_controller_unseal_errors_total",
        "sealed_secrets_controller_condition_info",
        "sealed_secrets_controller_http_requests_total",
        "sealed_secrets_controller_http_request_duration_seconds_bucket",
        "sealkit_key_sealedsecrets",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert needed in used, needed
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_dashboard_configmap_carries_the_file_verbatim() -> None:
    docs = helm_template(values={"metrics": {"dashboards": {"create": True}}}, crds=False)
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (path,) = (CHART / "dashboards").glob("*.json")
    assert cm["data"] == {path.name: path.read_text()}
    assert copy.deepcopy(json.loads(cm["data"][path.name]))["uid"] == "sealkit-controller"
