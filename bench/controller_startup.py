"""sealkit-controller start-up and memory (issue 17), this tree against a baseline tree.

Both controllers run as `python -m controller.main` processes on the same private control
plane, one after the other in the same run (the machine is shared: compare the ratios):

1. **start-up**: time from exec to the first 200 of ``/healthz``, ``/v1/cert.pem`` and
   ``/readyz`` (caches synced), with 1 and 24 RSA-4096 keys and N settled SealedSecrets in the
   watched namespace; peak RSS of that start.
2. **memory** (``--rss-n M``): M SealedSecrets (3 values each) unsealed from scratch, one
   namespace per controller: time until all M Secrets exist, controller CPU per SealedSecret,
   peak (VmHWM) and steady RSS (after the heap trim); then a restart over the M settled objects
   (ready times and RSS again).

The baseline is a git ref (``--baseline-ref``; its ``controller/`` and ``sealkit/`` are
exported to a temporary directory and put first on ``PYTHONPATH``). Without one only this tree
is measured. ``--quick`` (CI) starts one small run of each phase, only to check that the
benchmark works and its ratios are computed.

Usage: python bench/controller_startup.py [--baseline-ref REF] [--after-ref REF] [--n 1000]
       [--rss-n 10000] [--rounds 3] [--kubeconfig PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _proc import cpu_s, free_port, hwm_mb, rss_mb, stop_process  # noqa: E402
from controller_bench import (  # noqa: E402
    count_secrets_until,
    crd_gateway,
    parallel,
    secret,
)

from controller.kube_gateway import RealKubeGateway, sealed_path  # noqa: E402
from sealkit.keys import generate_key_and_cert, key_secret_manifest  # noqa: E402
from sealkit.model import seal_secret  # noqa: E402
from sealkit.scopes import Scope  # noqa: E402

PATHS = ("/healthz", "/v1/cert.pem", "/readyz")
PREFIX = f"startup-{os.getpid()}"  # namespaces of this run (a reused stack keeps old ones)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Run:
    """One controller process from `tree` (None: this checkout) watching `ns`."""

    def __init__(self, tree: Path | None, kubeconfig: str, key_ns: str, ns: str, log: Path):
        self.port, self.mport = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        self.log = log.open("ab")
        lease = f"bench-{self.port}"
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.main",
                f"--kubeconfig={kubeconfig}",
                f"--namespace={key_ns}",
                "--all-namespaces=false",
                f"--additional-namespaces={ns}",
                f"--listen-addr=127.0.0.1:{self.port}",
                f"--listen-metrics-addr=127.0.0.1:{self.mport}",
                f"--leader-election-id={lease}",
                "--kubeclient-qps=0",
                "--key-renew-period=0",
                "--log-level=INFO",
            ],
            cwd=tree or REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def until_ready(self, timeout: float = 300) -> dict[str, float]:
        """Seconds from exec to the first 200 of each path (polled every 20 ms), and the
        process's CPU seconds at that moment (`cpu/<path>`)."""
        seen: dict[str, float] = {}
        deadline = self.t0 + timeout
        while any(p not in seen for p in PATHS):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"controller not ready: {seen} (see {self.log.name})")
            for path in PATHS:
                if path in seen:
                    continue
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.port}{path}", timeout=1
                    ) as r:
                        if r.status == 200:
                            seen[path] = time.monotonic() - self.t0
                            # CPU seconds spent by then: comparable across machine loads
                            seen[f"cpu{path}"] = cpu_s(self.proc.pid)
                except OSError:
                    pass
            time.sleep(0.02)
        return seen

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def ensure_ns(gw: RealKubeGateway, ns: str) -> None:
    try:
        gw.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    except Exception as exc:  # noqa: BLE001 - already there (a reused stack)
        if getattr(exc, "status", 0) != 409:
            raise


def make_keys(gw: RealKubeGateway, count: int) -> Any:
    """Namespaces `<prefix>-k1` (the newest key) and `<prefix>-k24` (it plus 23 older ones)."""
    now = datetime.now(UTC)

    def gen(i: int) -> Any:
        return generate_key_and_cert(4096, now=now - timedelta(days=i))

    with ThreadPoolExecutor(2) as pool:
        pairs = list(pool.map(gen, range(count)))
    for ns, n in ((f"{PREFIX}-k1", 1), (f"{PREFIX}-k{count}", count)):
        ensure_ns(gw, ns)
        for i, (key, cert) in enumerate(pairs[:n]):
            gw.create_secret(ns, key_secret_manifest(key, cert, namespace=ns, name=f"k{i:02d}"))
    return pairs[0][0].public_key()


def fill(gw: RealKubeGateway, ns: str, n: int, public_key: Any) -> float:
    ensure_ns(gw, ns)
    one = seal_secret(secret("x", ns, 0), public_key, scope=Scope.NAMESPACE_WIDE)

    def make(i: int) -> None:
        obj = json.loads(json.dumps(one))
        obj["metadata"]["name"] = f"s{i:05d}"
        obj["spec"]["template"]["metadata"]["name"] = f"s{i:05d}"
        gw.request("POST", sealed_path(ns), body=obj)

    return parallel(make, list(range(n)))


def start_once(tree: Path | None, kubeconfig: str, key_ns: str, ns: str, log: Path) -> dict:
    run = Run(tree, kubeconfig, key_ns, ns, log)
    try:
        times = run.until_ready()
        time.sleep(0.5)
        out = {**times, "rss_mb": rss_mb(run.proc.pid), "peak_mb": hwm_mb(run.proc.pid)}
    finally:
        run.stop()
    return out


def bench_start(
    trees: dict[str, Path | None], kubeconfig: str, ns: str, keys: int, rounds: int, log: Path
) -> dict[str, Any]:
    """Median over `rounds` alternating starts of each tree."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            samples[name].append(start_once(tree, kubeconfig, f"{PREFIX}-k{keys}", ns, log))
    out: dict[str, Any] = {"keys": keys, "load": load()}
    for name, rows in samples.items():
        out[name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return out


def bench_rss(
    trees: dict[str, Path | None], kubeconfig: str, gw: RealKubeGateway, m: int, pub: Any, log: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {"m": m}
    for name, tree in trees.items():
        ns = f"{PREFIX}-rss-{name}"
        t_fill = fill(gw, ns, m, pub)
        print(f"memory[{name}]: {m} SealedSecrets created in {t_fill:.0f}s", flush=True)
        run = Run(tree, kubeconfig, f"{PREFIX}-k1", ns, log)
        peak = 0.0
        try:
            run.until_ready(600)
            t0, cpu0 = time.monotonic(), cpu_s(run.proc.pid)
            done: list[float] = []
            watcher = threading.Thread(
                target=lambda ns=ns, done=done: done.append(count_secrets_until(gw, ns, m, 3600)),
                daemon=True,
            )
            watcher.start()
            while watcher.is_alive():
                peak = max(peak, rss_mb(run.proc.pid))
                watcher.join(0.5)
            cpu = cpu_s(run.proc.pid) - cpu0
            time.sleep(35)  # steady state: the controller trims its heap every 30 s
            row = {
                "until_all_secrets_s": done[0] - t0,
                "cpu_ms_per_sealedsecret": cpu / m * 1e3,
                "peak_mb": max(peak, hwm_mb(run.proc.pid)),
                "steady_mb": rss_mb(run.proc.pid),
                "load": load(),
            }
        finally:
            run.stop()
        restart = start_once(tree, kubeconfig, f"{PREFIX}-k1", ns, log)
        row["restart"] = restart
        out[name] = row
        print(f"memory[{name}]: {json.dumps(row)}", flush=True)
    return out


def export_tree(ref: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "controller", "sealkit"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-ref", default="", help="git ref of the 'before' tree")
    ap.add_argument(
        "--after-ref", default="", help="git ref of the 'after' tree (default: this checkout)"
    )
    ap.add_argument("--n", type=int, default=1000, help="settled SealedSecrets at start-up")
    ap.add_argument("--rss-n", type=int, default=10000, help="0 skips the memory phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=24)
    ap.add_argument("--kubeconfig", default="", help="an existing stack (default: a private one)")
    ap.add_argument("--quick", action="store_true", help="CI: one small run of each phase")
    args = ap.parse_args()
    if args.quick:
        args.n, args.rss_n, args.rounds, args.keys = 20, 20, 1, 2
    work = Path(tempfile.mkdtemp(prefix="controller-startup-"))
    log = work / "controllers.log"
    trees: dict[str, Path | None] = {}
    if args.baseline_ref:
        trees["before"] = export_tree(args.baseline_ref, work / "before")
    trees["after"] = export_tree(args.after_ref, work / "after") if args.after_ref else None
    stack = None
    kubeconfig = os.path.abspath(args.kubeconfig) if args.kubeconfig else ""
    if not kubeconfig:
        import devstack

        stack = devstack.up(work / "stack", parts=("kube",), quiet=True)
        kubeconfig = stack.kubeconfig
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_at_start": load()}
    try:
        api, gw = crd_gateway(kubeconfig)
        pub = make_keys(gw, args.keys)
        ns = f"{PREFIX}-app"
        fill(gw, ns, args.n, pub)
        warm = Run(None, kubeconfig, f"{PREFIX}-k1", ns, log)  # settle the N objects first
        try:
            warm.until_ready()
            count_secrets_until(gw, ns, args.n, 900)
        finally:
            warm.stop()
        results["start"] = [
            bench_start(trees, kubeconfig, ns, k, args.rounds, log) for k in (1, args.keys)
        ]
        for row in results["start"]:
            line = f"start, {row['keys']} key(s), {args.n} settled objects, load {row['load']}:"
            for name in trees:
                r = row[name]
                line += (
                    f"  [{name}] healthz {r['/healthz']:.2f}s cert.pem {r['/v1/cert.pem']:.2f}s"
                    f" (CPU {r['cpu/v1/cert.pem']:.2f}s) readyz {r['/readyz']:.2f}s"
                    f" (CPU {r['cpu/readyz']:.2f}s) peak {r['peak_mb']:.0f} MB"
                )
            if "before" in trees:
                row["ratio_cert"] = ratio(
                    row["after"]["/v1/cert.pem"], row["before"]["/v1/cert.pem"]
                )
                row["ratio_ready"] = ratio(row["after"]["/readyz"], row["before"]["/readyz"])
                line += (
                    f"  after/before: cert.pem {row['ratio_cert']:.2f}x"
                    f" readyz {row['ratio_ready']:.2f}x"
                )
            print(line, flush=True)
        print(json.dumps(results["start"]), flush=True)
        if args.rss_n:
            r = bench_rss(trees, kubeconfig, gw, args.rss_n, pub, log)
            if "before" in trees:
                r["ratio_steady"] = ratio(r["after"]["steady_mb"], r["before"]["steady_mb"])
                r["ratio_peak"] = ratio(r["after"]["peak_mb"], r["before"]["peak_mb"])
                print(
                    f"memory at {r['m']}: after/before steady {r['ratio_steady']:.2f}x "
                    f"peak {r['ratio_peak']:.2f}x",
                    flush=True,
                )
            results["rss"] = r
        api.close()
    finally:
        if stack is not None:
            stack.stop()
    print(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
