"""Put the project's own workloads on the stack's node, as users would.

`deploy_controller` applies `deploy/` through `devstack/overlays/controller`
(only the image differs) with `kubectl apply --server-side -k`, after making
sure the node has the current sealkit image. An image rebuilt since the last
import (the source changed) restarts the rollout, so pods never run stale code.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import binaries, images
from .stack import Stack

REPO = Path(__file__).resolve().parent.parent
CONTROLLER_OVERLAY = REPO / "devstack" / "overlays" / "controller"
CONTROLLER_NAMESPACE = "kube-system"
CONTROLLER_DEPLOYMENT = "sealed-secrets-controller"


class NodeUnavailable(RuntimeError):
    """The stack has no node (binaries missing, or an external cluster)."""


def containerd_socket(stack: Stack) -> str:
    if not stack.node:
        raise NodeUnavailable(stack.missing.get("node", "this stack has no node"))
    return str(Path(stack.node["dir"]) / "run" / "containerd" / "containerd.sock")


def ensure_images(stack: Stack, archives: list[images.Archive]) -> list[str]:
    """Import what the node lacks; returns the names (re)imported."""
    return [name for name, _ in images.import_archives(containerd_socket(stack), archives)]


def kubectl(
    stack: Stack, *args: str, stdin: str | None = None, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    assert stack.kubeconfig
    proc = subprocess.run(
        [binaries.kubectl(), "--kubeconfig", stack.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()}")
    return proc


def deploy_controller(
    stack: Stack, overlay: Path = CONTROLLER_OVERLAY, timeout: float = 180
) -> float:
    """Apply the controller and wait for its rollout; returns the seconds it took."""
    t0 = time.monotonic()
    fresh = ensure_images(stack, [images.sealkit_image()])
    kubectl(stack, "apply", "--server-side", "--field-manager=devstack-demo", "-k", str(overlay))
    _roll_out(stack, CONTROLLER_NAMESPACE, restart=fresh, timeout=timeout)
    return time.monotonic() - t0


def _roll_out(stack: Stack, namespace: str, *, restart: bool, timeout: float) -> None:
    """Wait for the controller Deployment's rollout; ``restart`` first when a new image was
    imported under the same tag (the pod template did not change, so nothing would roll)."""
    target = ("-n", namespace, "rollout")
    if restart:
        kubectl(stack, *target, "restart", f"deployment/{CONTROLLER_DEPLOYMENT}")
    kubectl(
        stack,
        *target,
        "status",
        f"deployment/{CONTROLLER_DEPLOYMENT}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 15,
    )


@dataclass(frozen=True)
class ControllerVariant:
    """`deploy/` (through the controller overlay) with what one test or bench needs changed,
    written as a generated kustomize overlay: another namespace (its RBAC follows; the
    cluster-wide binding gets a name of its own so deploy/'s is untouched), extra controller
    args, the replica count, and for upstream's controller the image, command, ServiceAccount
    and readiness path. `omit` drops objects (kind, name), e.g. the proxier Role a test
    grants itself."""

    namespace: str = CONTROLLER_NAMESPACE
    args: tuple[str, ...] = ()
    replicas: int = 1
    image: str | None = None
    command: tuple[str, ...] | None = None
    service_account: str | None = None
    readiness_path: str | None = None
    omit: tuple[tuple[str, str], ...] = ()

    def kustomization(self, workdir: Path) -> dict[str, Any]:
        container = "/spec/template/spec/containers/0"
        ops: list[dict[str, Any]] = [
            {"op": "replace", "path": "/spec/replicas", "value": self.replicas}
        ]
        ops += [{"op": "add", "path": f"{container}/args/-", "value": a} for a in self.args]
        if self.image:
            ops += [
                {"op": "replace", "path": f"{container}/image", "value": self.image},
                {"op": "replace", "path": f"{container}/imagePullPolicy", "value": "Never"},
            ]
        if self.command:
            ops.append({"op": "replace", "path": f"{container}/command", "value": self.command})
        if self.service_account:
            ops.append(
                {
                    "op": "replace",
                    "path": "/spec/template/spec/serviceAccountName",
                    "value": self.service_account,
                }
            )
        if self.readiness_path:
            ops.append(
                {
                    "op": "replace",
                    "path": f"{container}/readinessProbe/httpGet/path",
                    "value": self.readiness_path,
                }
            )
        patches: list[dict[str, Any]] = [
            {"target": {"kind": "Deployment", "name": CONTROLLER_DEPLOYMENT}, "patch": _j(ops)}
        ]
        if self.namespace != CONTROLLER_NAMESPACE:
            patches.append(
                {
                    "target": {"kind": "ClusterRoleBinding", "name": UNSEALER_BINDING},
                    "patch": _j(
                        [{"op": "replace", "path": "/metadata/name", "value": self.cluster_binding}]
                    ),
                }
            )
        for kind, name in self.omit:
            patches.append(
                {
                    "target": {"kind": kind, "name": name},
                    "patch": _j(
                        [
                            {
                                "op": "add",
                                "path": "/metadata/annotations",
                                "value": {"config.kubernetes.io/local-config": "true"},
                            }
                        ]
                    ),
                }
            )
        return {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(CONTROLLER_OVERLAY, workdir)],
            "namespace": self.namespace,
            "patches": patches,
        }

    @property
    def cluster_binding(self) -> str:
        if self.namespace == CONTROLLER_NAMESPACE:
            return UNSEALER_BINDING
        return f"{UNSEALER_BINDING}-{self.namespace}"


UNSEALER_BINDING = "sealed-secrets-controller-unsealer"


def _j(value: object) -> str:
    return json.dumps(value)


def deploy_variant(
    stack: Stack,
    variant: ControllerVariant,
    *,
    key_secrets: Iterable[dict[str, Any]] = (),
    archives: Iterable[images.Archive] = (),
    timeout: float = 180,
) -> float:
    """Apply `variant` and wait for its rollout; returns the seconds it took. A namespace
    other than kube-system is created (labelled as a test namespace) with `key_secrets` in
    it before the pod starts, so the controller loads them instead of making its own."""
    t0 = time.monotonic()
    fresh = ensure_images(stack, [images.sealkit_image(), *archives])
    if variant.namespace != CONTROLLER_NAMESPACE:
        kubectl(stack, "create", "namespace", variant.namespace)
        kubectl(stack, "label", "namespace", variant.namespace, "sealkit-test=1")
    for secret in key_secrets:
        body = {**secret, "metadata": {**secret["metadata"], "namespace": variant.namespace}}
        kubectl(stack, "apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    with tempfile.TemporaryDirectory(prefix="sealkit-variant-") as tmp:
        (Path(tmp) / "kustomization.yaml").write_text(json.dumps(variant.kustomization(Path(tmp))))
        kubectl(
            stack,
            "apply",
            "--server-side",
            "--field-manager=devstack-variant",
            "--force-conflicts",
            "-k",
            tmp,
        )
    _roll_out(stack, variant.namespace, restart=fresh, timeout=timeout)
    return time.monotonic() - t0


def remove_variant(stack: Stack, variant: ControllerVariant, timeout: float = 90) -> None:
    """Delete the variant's Deployment and wait until its pods are gone (so the next test
    module finds no controller), then its own namespace and cluster binding, if any."""
    kubectl(
        stack,
        "-n",
        variant.namespace,
        "delete",
        "deployment",
        CONTROLLER_DEPLOYMENT,
        "--cascade=foreground",
        "--wait=true",
        f"--timeout={int(timeout)}s",
        "--ignore-not-found",
        check=False,
        timeout=timeout + 30,
    )
    if variant.namespace != CONTROLLER_NAMESPACE:
        kubectl(
            stack,
            "delete",
            "clusterrolebinding",
            variant.cluster_binding,
            "--ignore-not-found",
            check=False,
        )
        kubectl(
            stack,
            "delete",
            "namespace",
            variant.namespace,
            "--wait=false",
            "--ignore-not-found",
            check=False,
        )


def proxy_path(namespace: str, service: str = CONTROLLER_DEPLOYMENT, port: str = "http") -> str:
    """The apiserver's service-proxy path kubeseal uses (`http:<service>:<port name>`)."""
    return f"/api/v1/namespaces/{namespace}/services/http:{service}:{port}/proxy"


def wait_served(stack: Stack, namespace: str, timeout: float = 90) -> None:
    """Wait until /v1/cert.pem answers through the service proxy: a rollout is done when the
    pod is ready, the apiserver proxies to it once the endpoints controller has caught up."""
    deadline = time.monotonic() + timeout
    while True:
        got = kubectl(
            stack, "get", "--raw", f"{proxy_path(namespace)}/v1/cert.pem", check=False, timeout=15
        )
        if got.returncode == 0 and "BEGIN CERTIFICATE" in got.stdout:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service proxy never reached the controller: {got.stderr}")
        time.sleep(0.5)


@contextlib.contextmanager
def running_variant(
    stack: Stack,
    variant: ControllerVariant,
    *,
    key_secrets: Iterable[dict[str, Any]] = (),
    archives: Iterable[images.Archive] = (),
) -> Iterator[float]:
    """`deploy_variant` until the block ends, then `remove_variant`; yields the rollout's
    seconds once the Service answers through the proxy."""
    try:
        seconds = deploy_variant(stack, variant, key_secrets=key_secrets, archives=archives)
        wait_served(stack, variant.namespace)
        yield seconds
    finally:
        remove_variant(stack, variant)


def serving_pods(stack: Stack, namespace: str) -> list[dict[str, Any]]:
    """The ready pods behind the controller's Service (name and IP), from its EndpointSlices."""
    out = kubectl(
        stack,
        "-n",
        namespace,
        "get",
        "endpointslices",
        "-l",
        f"kubernetes.io/service-name={CONTROLLER_DEPLOYMENT}",
        "-o",
        "json",
    ).stdout
    return [
        {"name": (ep.get("targetRef") or {}).get("name", ""), "ip": ep["addresses"][0]}
        for item in json.loads(out)["items"]
        for ep in item.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready")
    ]
