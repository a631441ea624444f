"""Fixtures for tests that run real pods on the stack's node (see docs/devstack.md).

`node_stack` is the session's stack with its node (kubelet + containerd + runc);
without one the tests skip, and under CI=true they fail. Helpers run pods from
the images the stack built and wait on what the kubelet reports.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import require

SEALKIT_IMAGE = "localhost/sealkit/sealkit:dev"


@pytest.fixture(scope="session")
def node_stack(stack: Any) -> Any:
    require(stack, "kube", "node", "kubectl")
    return stack


@pytest.fixture(scope="module")
def deployed(node_stack: Any) -> Iterator[float]:
    """`kubectl apply --server-side -k` of deploy/ (image swapped by the overlay), for one
    test module; returns the rollout's seconds. Other tests run controllers of their own,
    so the cluster-wide one is deleted when the module ends, and its pods with it (foreground:
    `--wait` returns once they are gone, so the next module's controller check passes)."""
    from devstack.deploy import CONTROLLER_DEPLOYMENT, CONTROLLER_NAMESPACE, deploy_controller

    seconds = deploy_controller(node_stack)
    try:
        yield seconds
    finally:
        kubectl(
            node_stack,
            "-n",
            CONTROLLER_NAMESPACE,
            "delete",
            "deployment",
            CONTROLLER_DEPLOYMENT,
            "--cascade=foreground",
            "--wait=true",
            "--timeout=90s",
            check=False,
            timeout=120,
        )


def kubectl(
    stack: Any, *args: str, stdin: str | None = None, timeout: float = 180, check: bool = True
) -> subprocess.CompletedProcess[str]:
    for _ in range(3):
        proc = subprocess.run(
            [stack.kubectl, "--kubeconfig", stack.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        # logs/exec go from the apiserver to the kubelet; when the apiserver reuses a
        # connection the kubelet closed, that one call fails: try it again.
        if proc.returncode == 0 or "use of closed network connection" not in proc.stderr:
            break
        time.sleep(1)
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


def apply(stack: Any, docs: list[dict[str, Any]], manager: str = "sealkit-node-tests") -> None:
    kubectl(
        stack,
        "apply",
        "--server-side",
        f"--field-manager={manager}",
        "--force-conflicts",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def pod_script(
    name: str,
    namespace: str,
    script: str,
    *,
    image: str = SEALKIT_IMAGE,
    env: dict[str, str] | None = None,
    sa: str | None = None,
) -> dict[str, Any]:
    """A one-shot pod that runs a Python script in `image` (non-root, read-only root)."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": sa is not None,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1001},
        "containers": [
            {
                "name": "main",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["python3", "-c", script],
                "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if sa:
        spec["serviceAccountName"] = sa
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def run_pod(stack: Any, pod: dict[str, Any], timeout: float = 120) -> tuple[str, str]:
    """Create the pod, wait until it ends; returns (phase, logs)."""
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    apply(stack, [pod])

    def ended() -> str | None:
        out = kubectl(
            stack, "-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}", check=False
        ).stdout
        return out if out in ("Succeeded", "Failed") else None

    phase = wait_for(ended, timeout, f"pod {ns}/{name} to finish")

    def logs() -> str:
        # Right after the phase changes the kubelet may not serve the log yet.
        got = kubectl(stack, "-n", ns, "logs", name, check=False)
        return got.stdout if got.returncode == 0 and got.stdout.strip() else ""

    try:
        return phase, wait_for(logs, 15, f"the logs of pod {ns}/{name}")
    except AssertionError:
        return phase, ""
