"""Cluster add-ons a node needs: cluster DNS, and Services for the stack's host services.

- CoreDNS (built here, see `devstack.images`) as a Deployment behind the
  `kube-dns` Service at 10.0.0.10, the kubelet's `clusterDNS`. It answers only
  for the cluster's zones: it forwards nothing, so pods never query a resolver
  outside the machine.
- OpenBao and PostgreSQL stay host processes; pods reach them by in-cluster
  names (`openbao.devstack.svc:8200`, `postgresql.devstack.svc:5432`) through
  Services whose EndpointSlices point at the node relays on the host veth.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from .images import COREDNS_IMAGE
from .nodeconf import CLUSTER_DNS_IP, CLUSTER_DOMAIN

HOST_SERVICES_NAMESPACE = "devstack"
COREFILE = f""".:1053 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loop
    reload
}}
"""


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/part-of": "devstack", **labels},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def coredns_manifests() -> list[dict[str, Any]]:
    ns = "kube-system"
    app = {"k8s-app": "kube-dns"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("coredns", ns)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta("system:coredns"),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta("system:coredns"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("coredns", ns),
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta("coredns", ns, **app),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": app},
                "template": {
                    "metadata": {"labels": app},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                        "containers": [
                            {
                                "name": "coredns",
                                "image": COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 1053, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 1053, "protocol": "TCP"},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                                "resources": {
                                    "requests": {"cpu": "20m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("kube-dns", ns, **app),
            "spec": {
                "clusterIP": CLUSTER_DNS_IP,
                "selector": app,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 1053, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 1053, "protocol": "TCP"},
                ],
            },
        },
    ]


def host_service_manifests(
    host_ip: str, services: dict[str, tuple[int, int]]
) -> list[dict[str, Any]]:
    """`services`: name -> (service port, relay port on `host_ip`)."""
    ns = HOST_SERVICES_NAMESPACE
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns)}]
    for name, (port, relay) in services.items():
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(name, ns),
                "spec": {
                    "ports": [{"name": "tcp", "port": port, "targetPort": relay, "protocol": "TCP"}]
                },
            }
        )
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    **_meta(
                        f"{name}-host",
                        ns,
                        **{
                            "kubernetes.io/service-name": name,
                            "endpointslice.kubernetes.io/managed-by": "devstack",
                        },
                    )
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [host_ip], "conditions": {"ready": True}}],
                "ports": [{"name": "tcp", "port": relay, "protocol": "TCP"}],
            }
        )
    return out


def apply(kubectl: str, kubeconfig: str, manifests: list[dict[str, Any]]) -> None:
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    proc = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--server-side",
            "--field-manager=devstack",
            "--force-conflicts",
            "-f",
            "-",
        ],
        input=doc,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl apply of the node add-ons failed: {proc.stderr.strip()}")
