"""The node's costs on the running stack (`make stack-up` first): pod start, rollout, memory.

    .venv/bin/python bench/node_bench.py [--pods 10] [--quick]

``--quick`` (CI, ``bench/run.sh --quick``): one pod; exit 1 unless every figure is measured.

- pod create-to-Ready: N one-container pods (the sealkit image, `sleep`), created one at a
  time; the median and max of create -> Ready as the kubelet reports it;
- controller rollout: `deploy/` applied through the devstack overlay, from no Deployment to
  both replicas Ready (`kubectl rollout status`);
- memory: RSS of every stack process (host processes, node processes, and the pods'
  processes, found by the node's cgroup root), in MiB.

Prints the load average with the figures: on 2 shared cores they move with it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import load  # noqa: E402
from devstack.deploy import CONTROLLER_DEPLOYMENT, CONTROLLER_NAMESPACE, deploy_controller  # noqa: E402
from devstack.deploy import kubectl as run_kubectl  # noqa: E402
from devstack.node import node_processes  # noqa: E402


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pod_ready_times(stack, n: int) -> list[float]:
    ns = f"bench-{os.getpid()}"
    run_kubectl(stack, "create", "namespace", ns)
    times = []
    try:
        for i in range(n):
            pod = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"p{i}", "namespace": ns},
                "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 0,
                         "securityContext": {"runAsNonRoot": True, "runAsUser": 1001},
                         "containers": [{"name": "c", "image": "localhost/sealkit/sealkit:dev",
                                         "imagePullPolicy": "Never",
                                         "command": ["sleep", "600"]}]},
            }  # fmt: skip
            for _ in range(60):  # the namespace's default ServiceAccount may lag
                if run_kubectl(stack, "apply", "-f", "-", stdin=json.dumps(pod),
                               check=False).returncode == 0:  # fmt: skip
                    break
                time.sleep(0.5)
            t0 = time.monotonic()
            run_kubectl(stack, "-n", ns, "wait", "--for=condition=Ready", f"pod/p{i}",
                        "--timeout=120s", timeout=130)  # fmt: skip
            times.append(time.monotonic() - t0)
    finally:
        run_kubectl(stack, "delete", "namespace", ns, "--wait=false", check=False)
    return times


def memory(stack) -> dict[str, float]:
    out = {name: _rss_mib(rec.pid) for name, rec in stack.processes.items()}
    if stack.node:
        seen = {rec.pid for rec in stack.processes.values()}
        pods = [p for p in node_processes(stack.node["cgroup_root"], set()) if p not in seen]
        shims_etc = [p for p in node_processes("/-none-", set(stack.node_ns)) if p not in seen]
        out["pods (all containers)"] = sum(_rss_mib(p) for p in pods)
        out["shims and other node processes"] = sum(_rss_mib(p) for p in shims_etc)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument(
        "--quick", action="store_true", help="CI: 1 pod; exit 1 unless every figure is measured"
    )
    args = parser.parse_args()
    if args.quick:
        args.pods = 1
    stack = load(os.environ.get("SEALKIT_BENCH_STACK_DIR") or None)
    if stack is None or not stack.node:
        print("node_bench: no stack with a node; run `make stack-up` first", file=sys.stderr)
        return 2
    print(f"load average: {os.getloadavg()}")
    times = pod_ready_times(stack, args.pods)
    print(f"pod create-to-Ready (n={len(times)}): median {statistics.median(times):.2f}s, "
          f"max {max(times):.2f}s")  # fmt: skip
    run_kubectl(stack, "-n", CONTROLLER_NAMESPACE, "delete", "deployment", CONTROLLER_DEPLOYMENT,
                "--ignore-not-found", "--wait=true", "--timeout=90s")  # fmt: skip
    seconds = deploy_controller(stack)
    print(f"controller rollout (deploy/, 2 replicas, from nothing to Ready): {seconds:.1f}s")
    mem = memory(stack)
    for name, mib in sorted(mem.items(), key=lambda kv: -kv[1]):
        print(f"  {name:34} {mib:7.1f} MiB")
    print(f"stack memory with the node and the controller: {sum(mem.values()):.0f} MiB")
    figures = [*times, seconds, sum(mem.values())]
    # Tests run controllers of their own: leave no cluster-wide one behind.
    run_kubectl(stack, "-n", CONTROLLER_NAMESPACE, "delete", "deployment", CONTROLLER_DEPLOYMENT,
                "--ignore-not-found", "--wait=false")  # fmt: skip
    print(f"load average: {os.getloadavg()}")
    if not all(math.isfinite(v) and v > 0 for v in figures):
        print("node_bench: a figure could not be measured", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
