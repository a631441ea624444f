"""Hostile requests against the controller pods of `deploy/` on the real node (issue 12).

The YAML bomb goes through the apiserver's service proxy as a user holding only the proxier
Role; the slowloris comes from a pod in the cluster, straight at the Service. Both pods must
stay Ready and not restart: before the hardening the bomb took +320 MB per request (256Mi
limit) and 140 half-sent connections made the probes answer 503.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.node.conftest import apply, kubectl, pod_script, wait_for

pytestmark = [pytest.mark.stack]

CONTROLLER_NS = "kube-system"
CONTROLLER = "sealed-secrets-controller"
BOMB = b"a: [" + b"1," * 499_000 + b"1]\n"


def _pods(stack: Any) -> list[dict[str, Any]]:
    out = kubectl(
        stack,
        "-n",
        CONTROLLER_NS,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=sealed-secrets-controller",
        "-o",
        "json",
    ).stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def _health(stack: Any) -> list[tuple[bool, int]]:
    """(Ready, restart count) of each controller pod."""
    out = []
    for pod in _pods(stack):
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        restarts = sum(
            c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses", [])
        )
        out.append((ready, restarts))
    return out


def _require_this_tree(stack: Any) -> None:
    """The pods must run this tree's code, or a failure here would say nothing about it."""
    pod = _pods(stack)[0]["metadata"]["name"]
    probe = kubectl(
        stack,
        "-n",
        CONTROLLER_NS,
        "exec",
        pod,
        "--",
        "python3",
        "-c",
        "import controller.http.transport",
        check=False,
    )
    assert probe.returncode == 0, (
        "the controller pods run an image without controller.http: the node's sealkit image "
        f"was not built from this tree ({probe.stderr.strip()[-200:]})"
    )


def _watch_ready(stack: Any, seconds: float) -> list[list[tuple[bool, int]]]:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(_health(stack))
        time.sleep(2)
    return seen


def test_yaml_bombs_through_the_proxy_leave_the_pods_ready(
    node_stack: Any, deployed: float, tmp_path: Any
) -> None:
    wait_for(
        lambda: len(_pods(node_stack)) == 2 and all(r for r, _ in _health(node_stack)),
        180,
        "two Ready controller pods",
    )
    _require_this_tree(node_stack)
    before = _health(node_stack)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_bytes(BOMB)
    path = f"/api/v1/namespaces/{CONTROLLER_NS}/services/http:{CONTROLLER}:http/proxy/v1/verify"
    procs = [
        subprocess.Popen(
            [
                node_stack.kubectl,
                "--kubeconfig",
                node_stack.kubeconfig,
                "--as",
                "mallory@example.com",
                "--as-group",
                "system:authenticated",
                "create",
                "--raw",
                path,
                "-f",
                str(bomb),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    for (_, err), proc in zip(outcomes, procs, strict=True):
        assert proc.returncode != 0 and ("BadRequest" in err or "400" in err), err
    seen = _watch_ready(node_stack, 20)
    assert all(ready for snapshot in seen for ready, _ in snapshot), seen
    assert [r for _, r in _health(node_stack)] == [r for _, r in before]


SLOWLORIS = """
import os, socket, time
held, refused = [], 0
targets = os.environ["POD_IPS"].split(",")
for ip in targets:  # 140 at EACH pod: a Service would spread them below any cap
    for _ in range(140):
        s = socket.create_connection((ip, 8080), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\\r\\n")
        held.append(s)
time.sleep(1)
for s in held:
    s.settimeout(0.05)
    try:
        if s.recv(20).startswith(b"HTTP/1.1 503"):
            refused += 1
    except OSError:
        pass
print("held", len(held), "refused", refused, flush=True)
end = time.time() + 40
while time.time() < end:  # re-open what the header deadline closed
    for i, s in enumerate(held):
        try:
            s.sendall(b"X")
        except OSError:
            try:
                held[i] = socket.create_connection((targets[i // 140], 8080), timeout=5)
                held[i].sendall(b"GET /healthz HTTP/1.1\\r\\n")
            except OSError:
                pass
    time.sleep(2)
print("done", flush=True)
"""


def test_slowloris_from_a_pod_leaves_the_pods_ready(
    node_stack: Any, deployed: float, namespace: str
) -> None:
    wait_for(
        lambda: len(_pods(node_stack)) == 2 and all(r for r, _ in _health(node_stack)),
        180,
        "two Ready controller pods",
    )
    _require_this_tree(node_stack)
    before = _health(node_stack)
    ips = ",".join(p["status"]["podIP"] for p in _pods(node_stack))
    apply(node_stack, [pod_script("slowloris", namespace, SLOWLORIS, env={"POD_IPS": ips})])
    try:

        def running() -> bool:
            phase = kubectl(
                node_stack,
                "-n",
                namespace,
                "get",
                "pod",
                "slowloris",
                "-o",
                "jsonpath={.status.phase}",
                check=False,
            ).stdout
            return phase in ("Running", "Succeeded", "Failed")

        wait_for(running, 120, "the slowloris pod to start")
        seen = _watch_ready(node_stack, 45)  # longer than 3 failed probes
        assert all(ready for snapshot in seen for ready, _ in snapshot), seen
        assert [r for _, r in _health(node_stack)] == [r for _, r in before]
        logs = kubectl(node_stack, "-n", namespace, "logs", "slowloris", check=False).stdout
        assert "held 280" in logs, logs
    finally:
        kubectl(
            node_stack, "-n", namespace, "delete", "pod", "slowloris", "--wait=false", check=False
        )
