"""A node's stack comes up, runs a pod, and `down` leaves nothing of it on the machine.

Runs on a private stack (control plane + node only), so the shared stack is untouched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.node.conftest import kubectl, pod_script, run_pod

pytestmark = [pytest.mark.stack]


def _host_state(node: dict[str, str]) -> dict[str, Any]:
    root = node["cgroup_root"].lstrip("/")
    cgroups = [str(h / root) for h in Path("/sys/fs/cgroup").iterdir() if (h / root).exists()]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if node["cgroup_root"] in Path(f"/proc/{pid}/cgroup").read_text():
                procs.append(pid)
        except OSError:
            continue
    return {
        "cgroups": cgroups,
        "veth": [
            line
            for line in links.splitlines()
            if f"{node['host_ip']}" in line or "skn" in line and Path(node["dir"]).name in line
        ],
        "route": [line for line in routes.splitlines() if node["pod_cidr"] in line],
        "mounts": [line for line in mounts.splitlines() if node["dir"] in line],
        "processes": procs,
    }


def test_down_removes_every_process_cgroup_interface_route_and_mount(
    stack: Any, tmp_path: Path
) -> None:
    import devstack
    from devstack import nodenet
    from tests.conftest import in_ci, unavailable

    if "node" in stack.missing and not in_ci():
        unavailable(stack.missing["node"])
    before = _sysctls()
    own = devstack.up(tmp_path / "s", parts=("kube", "node"), strict=True, quiet=True)
    try:
        assert own.node is not None
        node = dict(own.node)
        iface = nodenet.host_interface(Path(node["dir"]))
        assert iface in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        phase, logs = run_pod(own, pod_script("hello", "default", "print('hello from a pod')"))
        assert (phase, logs.strip()) == ("Succeeded", "hello from a pod")
        assert _host_state(node)["processes"], "the pod ran in the node's cgroups"
        ctr_state = kubectl(own, "get", "pods", "-A", "-o", "name").stdout
        assert "pod/hello" in ctr_state
    finally:
        own.stop()
    left = _host_state(node)
    assert left == {"cgroups": [], "veth": [], "route": [], "mounts": [], "processes": []}, left
    assert iface not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    # The machine's own sysctls were never written (the box covers them with files).
    assert _sysctls() == before


def _sysctls() -> dict[str, str]:
    from devstack.nodenet import SYSCTLS

    return {f: Path(f"/proc/sys/{f}").read_text() for f in SYSCTLS}
