"""`python -m devstack up|down|status|env [--dir DIR]` (the Makefile's stack targets)."""

from __future__ import annotations

import argparse
import os
import sys

from .binaries import MissingComponent
from .readiness import ComponentFailed
from .stack import ENV_FILE, down, load, render_env, resolve_dir, up


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
            stack = up(d, strict=strict, parts=("kube", "vault", "postgres", *args.extra))
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
    print("healthy" if reason is None else f"UNHEALTHY: {reason}")
    return 0 if reason is None else 1


if __name__ == "__main__":
    sys.exit(main())
