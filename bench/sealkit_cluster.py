"""Cluster calls, sealkit vs the real kubeseal, side by side: ``--fetch-cert`` and sealing
without ``--cert`` (Service GET + cert.pem through the apiserver's service proxy).

Needs the local stack with its node (reuses a healthy ``.devstack`` one, else starts a private
one). The controller is a real pod on the node: `deploy/` applied into a fresh namespace
(`devstack.deploy.ControllerVariant`: one replica, a 4096-bit key Secret put there before it
starts, no rate limit in the way), reached through the apiserver's service proxy as in the
proxy tests. Each round runs every command once as a fresh process, alternating the order.
Reports median/min wall time and the ratio to kubeseal (target: <= 2x).

    .venv/bin/python bench/sealkit_cluster.py [--rounds 20] [--json] [--quick]

``--quick`` (CI, ``bench/run.sh --quick``): 2 rounds, exit 1 unless every ratio is computed.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SECRET = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n"
    "stringData:\n  password: s3cret\n"
)
SERVICE = "sealed-secrets-controller"


def _variant_and_key() -> tuple[Any, dict[str, Any]]:
    from devstack.deploy import ControllerVariant
    from sealkit.keys import generate_key_and_cert, key_secret_manifest

    key, cert = generate_key_and_cert(4096)
    variant = ControllerVariant(
        namespace=f"bench-cluster-{secrets.token_hex(3)}",
        args=("--all-namespaces=false", "--rate-limit=100000", "--rate-limit-burst=100000"),
    )
    return variant, key_secret_manifest(key, cert, name="sealed-secrets-keybench")


CPU: dict[str, list[float]] = {}


def _time(argv: list[str], stdin: bytes) -> float:
    """Wall time; the child's CPU time (user+sys, less sensitive to load) goes to `CPU`."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    CPU.setdefault(argv[0], []).append(
        after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    )
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="CI: 2 rounds; exit 1 unless every ratio computes"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds = 2

    import devstack
    from devstack import binaries
    from devstack.deploy import running_variant

    stack = devstack.load_healthy(os.environ.get("SEALKIT_BENCH_STACK_DIR") or None)
    own = None
    if stack is None:
        own = stack = devstack.up(Path(tempfile.mkdtemp(prefix="bench-cluster-")), quiet=True)
    from sealkit_cold import _installed_python  # type: ignore[import-not-found]

    kubeseal = os.environ.get("KUBESEAL") or binaries.kubeseal()
    # As a wheel install runs it: no editable-install finder (a fixed ~20 ms per start).
    venv_dir = tempfile.mkdtemp(prefix="bench-cluster-venv-")
    atexit.register(shutil.rmtree, venv_dir, ignore_errors=True)  # leave /tmp as found
    installed = _installed_python(venv_dir)
    import compileall

    # A wheel install byte-compiles; the warm-up would not when PYTHONDONTWRITEBYTECODE is set
    # (lost in a merge once: every sealkit start then compiled its modules from source).
    # force: compileall trusts a .pyc whose recorded mtime matches, but the import system also
    # checks the size, so a source rewritten within the same second was compiled at every run.
    compileall.compile_dir(str(ROOT / "sealkit"), quiet=1, force=True)
    entry = "import sys; from sealkit.cli import main; sys.exit(main())"
    variant, key_secret = _variant_and_key()
    namespace = variant.namespace
    results: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, float]] = {}
    try:
        if not stack.node:
            raise SystemExit(f"error: the stack has no node: {stack.missing.get('node', '?')}")
        with running_variant(stack, variant, key_secrets=[key_secret]):
            common = ["--kubeconfig", stack.kubeconfig, "--controller-namespace", namespace]
            deadline = time.monotonic() + 90
            while (
                subprocess.run([kubeseal, "--fetch-cert", *common], capture_output=True).returncode
                != 0
            ):
                if time.monotonic() > deadline:
                    raise SystemExit("the service proxy never reached the controller")
                time.sleep(0.5)
            cases = {
                "--fetch-cert": (["--fetch-cert"], b""),
                "seal (no --cert)": ([], SECRET.encode()),
            }
            tools = {"kubeseal": [kubeseal], "sealkit": [installed, "-c", entry]}
            for case, (extra, stdin) in cases.items():
                for tool in tools.values():  # warm-up: page cache, .pyc files
                    _time([*tool, *common, *extra], stdin)
                runs: dict[str, list[float]] = {name: [] for name in tools}
                CPU.clear()
                for i in range(args.rounds):
                    order = list(tools.items()) if i % 2 == 0 else list(tools.items())[::-1]
                    for name, tool in order:
                        runs[name].append(_time([*tool, *common, *extra], stdin))
                results[case] = runs
                cpu[case] = {name: statistics.median(CPU[tool[0]]) for name, tool in tools.items()}
    finally:
        if own is not None:
            own.stop()
            shutil.rmtree(own.dir, ignore_errors=True)
    report: dict[str, Any] = {
        case: {
            name: {
                "median_ms": round(statistics.median(v) * 1000, 1),
                "min_ms": round(min(v) * 1000, 1),
                "cpu_median_ms": round(cpu[case][name] * 1000, 1),
            }
            for name, v in runs.items()
        }
        for case, runs in results.items()
    }
    for runs in report.values():
        runs["ratio_median"] = round(
            runs["sealkit"]["median_ms"] / runs["kubeseal"]["median_ms"], 2
        )
        runs["ratio_cpu"] = round(
            runs["sealkit"]["cpu_median_ms"] / runs["kubeseal"]["cpu_median_ms"], 2
        )
    report["uptime"] = os.popen("uptime").read().strip()  # noqa: S605,S607 - load at the time
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for case, runs in report.items():
            if case == "uptime":
                continue
            print(
                f"{case:18} kubeseal {runs['kubeseal']['median_ms']:7.1f} ms  "
                f"sealkit {runs['sealkit']['median_ms']:7.1f} ms  "
                f"(min {runs['kubeseal']['min_ms']:.1f} / {runs['sealkit']['min_ms']:.1f})  "
                f"ratio {runs['ratio_median']:.2f}x wall; CPU "
                f"{runs['kubeseal']['cpu_median_ms']:.1f} / "
                f"{runs['sealkit']['cpu_median_ms']:.1f} ms = {runs['ratio_cpu']:.2f}x"
            )
        print(f"load: {report['uptime']}")
    ratios = [
        r[k] for c, r in report.items() if c != "uptime" for k in ("ratio_median", "ratio_cpu")
    ]
    if not ratios or not all(math.isfinite(x) and x > 0 for x in ratios):
        print("error: a ratio could not be computed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
