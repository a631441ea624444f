"""`python -m devstack up|down|status|env [--dir DIR]` (the Makefile's stack targets)."""

from __future__ import annotations

import argparse
import os
import sys

from .binaries import MissingComponent
from .readiness import ComponentFailed
from .stack import ENV_FILE, Stack, down, load, render_env, resolve_dir, up


def node_summary(stack: Stack) -> str:
    """One block about the node: addresses, readiness and versions, pods per phase."""
    import json

    from .readiness import http_get

    assert stack.node is not None
    n = stack.node
    lines = [
        f"node {n['name']}: InternalIP {n['node_ip']}, pods {n['pod_cidr']}, "
        f"host relays on {n['host_ip']}, cgroups {n['cgroup_root']}"
    ]
    if stack.apiserver_url and stack.ca_file and stack.admin_cert and stack.admin_key:
        cert = (stack.admin_cert, stack.admin_key)
        status, body = http_get(
            f"{stack.apiserver_url}/api/v1/nodes/{n['name']}",
            ca_file=stack.ca_file,
            client_cert=cert,
        )
        if status == 200:
            node = json.loads(body)
            ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}.get("Ready")
            info = node["status"]["nodeInfo"]
            lines.append(
                f"  Ready={ready}, kubelet {info['kubeletVersion']}, "
                f"{info['containerRuntimeVersion']}, kernel {info['kernelVersion']}"
            )
        status, body = http_get(
            f"{stack.apiserver_url}/api/v1/pods", ca_file=stack.ca_file, client_cert=cert
        )
        if status == 200:
            phases: dict[str, int] = {}
            for pod in json.loads(body)["items"]:
                phase = pod["status"].get("phase", "?")
                phases[phase] = phases.get(phase, 0) + 1
            lines.append(
                "  pods: " + (", ".join(f"{v} {k}" for k, v in sorted(phases.items())) or "none")
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument("--dir", help="stack directory (default: <checkout>/.devstack)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail when a part's binaries are missing (default under CI=true)",
    )
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        choices=("argocd",),
        help="also start an opt-in part (argocd: Redis, a Git server, Argo CD)",
    )
    args = parser.parse_args(argv)
    strict = args.strict or os.environ.get("CI", "").lower() == "true"
    d = resolve_dir(args.dir)

    if args.command == "up":
        try:
            stack = up(d, strict=strict, parts=("kube", "vault", "postgres", "node", *args.extra))
        except MissingComponent as err:
            print(f"devstack: missing {err}", file=sys.stderr)
            return 3
        except ComponentFailed as err:
            print(err.report(), file=sys.stderr)
            return 1
        absent = [p for p, why in stack.missing.items() if "not requested" not in why]
        if absent:
            print(f"devstack: WARNING: started without {', '.join(absent)}", file=sys.stderr)
        print(f"devstack: env written to {d / ENV_FILE}; use: . {d / ENV_FILE}", file=sys.stderr)
        return 0
    if args.command == "down":
        down(d)
        return 0
    stack = load(d)
    if stack is None:
        print(f"devstack: no stack in {d}", file=sys.stderr)
        return 1
    if args.command == "env":
        sys.stdout.write(render_env(stack.env))
        return 0
    reason = stack.unhealthy_reason()
    for name, rec in stack.processes.items():
        print(f"{name:26} pid {rec.pid:<8} log {rec.log}")
    for part, why in stack.missing.items():
        print(f"{part:26} missing: {why}")
    if stack.node:
        print(node_summary(stack))
    print("healthy" if reason is None else f"UNHEALTHY: {reason}")
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main())
