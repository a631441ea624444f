"""Put the project's own workloads on the stack's node, as users would.

`deploy_controller` applies `deploy/` through `devstack/overlays/controller`
(only the image differs) with `kubectl apply --server-side -k`, after making
sure the node has the current sealkit image. An image rebuilt since the last
import (the source changed) restarts the rollout, so pods never run stale code.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

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
    if fresh:
        kubectl(
            stack,
            "-n",
            CONTROLLER_NAMESPACE,
            "rollout",
            "restart",
            f"deployment/{CONTROLLER_DEPLOYMENT}",
        )
    kubectl(
        stack,
        "-n",
        CONTROLLER_NAMESPACE,
        "rollout",
        "status",
        f"deployment/{CONTROLLER_DEPLOYMENT}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 15,
    )
    return time.monotonic() - t0
