"""Controller benchmarks (figures go to docs/benchmarks.md, "controller" section).

1. **throughput**: N SealedSecrets (3 values each, RSA-4096) created at once against a private
   control plane, timed until all N Secrets exist, against the floor
   max(a, b): (a) the same client creating N Secrets directly (same thread count), (b) 3N raw
   RSA-4096 OAEP decryptions spread over all cores. The controller runs as a separate
   `sealkit-controller` process, like in a cluster.
2. **keys**: unseal (plan) time per SealedSecret with 1, 12 and 24 keys, with the key hint
   (steady state) and without (first sight, sealed by the oldest key: worst case).
3. **memory**: RSS of the controller process holding M SealedSecrets (and their M Secrets).

Usage: python bench/controller_bench.py [--n 1000] [--rss-n 10000] [--skip-rss] [--quick]

``--quick`` (CI, ``bench/run.sh --quick``): tiny sizes on the running stack; exit 1 unless the
ratio and figures are computed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _proc import cpu_s, free_port, rss_mb, stop_process  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

from controller.keyring import entry_from_secret  # noqa: E402
from controller.kube_gateway import RealKubeGateway, sealed_path  # noqa: E402
from controller.reconcile import plan_reconcile  # noqa: E402
from sealkit.keys import generate_key_and_cert, key_secret_manifest  # noqa: E402
from sealkit.model import seal_secret  # noqa: E402

THREADS = 8


def secret(name: str, ns: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {
            "username": f"user-{i}",
            "password": f"pw-{i:08d}-xxxxxxxx",
            "url": f"postgres://db-{i}.example:5432/app",
        },
    }


def entry(bits: int = 4096, days_old: int = 0) -> Any:
    from datetime import UTC, datetime, timedelta

    key, cert = generate_key_and_cert(bits, now=datetime.now(UTC) - timedelta(days=days_old))
    m = key_secret_manifest(key, cert, namespace="kube-system", name=f"k{days_old}")
    return entry_from_secret(m), m


def parallel(fn: Any, items: list[Any], threads: int = THREADS) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, items))
    return time.perf_counter() - t0


class Controller:
    def __init__(self, kubeconfig: str, key_ns: str, ns: str, log: Path) -> None:
        self.port, self.mport = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.main",
                "--kubeconfig",
                kubeconfig,
                "--namespace",
                key_ns,
                "--all-namespaces=false",
                "--additional-namespaces",
                ns,
                "--listen-addr",
                f"127.0.0.1:{self.port}",
                "--listen-metrics-addr",
                f"127.0.0.1:{self.mport}",
                "--leader-elect=false",
                "--kubeclient-qps",
                "0",
                "--log-level",
                "WARN",
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:  # exited: no wait
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("controller not ready")

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def start_controller(
    kubeconfig: str, key_ns: str, ns: str, log: Path, timeout: float = 120
) -> Controller:
    """A ready controller; one retry, because on a shared, overloaded machine a start can fail
    its own liveness checks. The log's tail is printed when the retry fails too."""
    for attempt in (1, 2):
        ctl = Controller(kubeconfig, key_ns, ns, log.with_suffix(f".{attempt}.log"))
        try:
            ctl.wait_ready(timeout)
            return ctl
        except RuntimeError:
            ctl.stop()
            tail = log.with_suffix(f".{attempt}.log").read_text(errors="replace")[-1500:]
            print(f"controller start {attempt} failed; its log ends:\n{tail}", file=sys.stderr)
    raise RuntimeError("controller not ready (twice)")


def crd_gateway(kubeconfig: str) -> tuple[Any, RealKubeGateway]:
    """An API client with a pool for THREADS writers (`.close()` it), its unthrottled gateway,
    the CRD installed."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)
    api.configuration.connection_pool_maxsize = THREADS * 2
    gw = RealKubeGateway(api, qps=0, burst=1)
    install_crd(gw)
    return api, gw


def install_crd(gw: RealKubeGateway) -> None:
    import yaml

    crd = yaml.safe_load((REPO / "deploy" / "crd.yaml").read_text())
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    try:
        gw.request("POST", path, body=crd)
    except Exception as exc:  # noqa: BLE001 - already there
        if getattr(exc, "status", 0) != 409:
            raise
    for _ in range(300):
        got = gw.request("GET", f"{path}/sealedsecrets.bitnami.com")
        if any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (got.get("status") or {}).get("conditions") or []
        ):
            return
        time.sleep(0.1)
    raise RuntimeError("CRD not established")


def count_secrets_until(gw: RealKubeGateway, ns: str, n: int, timeout: float) -> float:
    """Poll until n Secrets exist in `ns`; return the monotonic time it was seen.

    Cheap on purpose (a LIST with limit=1 and `remainingItemCount`), so that observing the
    controller does not load the apiserver it is being measured against.
    """
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        page = gw.request(
            "GET", f"/api/v1/namespaces/{ns}/secrets", query=[("limit", 1)], limit=False
        )
        items = page.get("items") or []
        count = len(items) + int((page.get("metadata") or {}).get("remainingItemCount") or 0)
        if count >= n:
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"only {count} of {n} Secrets after {timeout}s")


def bench_throughput(
    kubeconfig: str, n: int, work: Path, server_pids: list[int] | None = None, tag: str = ""
) -> dict[str, float]:

    api, gw = crd_gateway(kubeconfig)
    floor_ns, app_ns, keys_ns = f"floor{tag}", f"app{tag}", f"keys{tag}"
    for ns in (floor_ns, app_ns, keys_ns):
        gw.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    # the controller's key: made here (RSA-4096) and stored as a Bitnami key Secret
    ent, manifest = entry(4096)
    manifest["metadata"]["namespace"] = keys_ns
    gw.create_secret(keys_ns, manifest)

    # floor (a): the same client creating n Secrets directly
    t_direct = parallel(
        lambda i: gw.create_secret(floor_ns, secret(f"s{i}", floor_ns, i)), list(range(n))
    )
    # floor (b): 3n raw RSA-OAEP decryptions over all cores
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"x")
    blob = ent.public_key.encrypt(os.urandom(32), oaep)
    cpu0 = time.process_time()
    t_rsa = parallel(
        lambda _: ent.private_key.decrypt(blob, oaep),
        list(range(3 * n)),
        threads=os.cpu_count() or 1,
    )
    t_rsa_cpu = time.process_time() - cpu0
    floor = max(t_direct, t_rsa)

    sealed = [seal_secret(secret(f"s{i}", app_ns, i), ent.public_key) for i in range(n)]
    ctl = start_controller(kubeconfig, keys_ns, app_ns, work / "controller-throughput.log")
    try:
        servers0 = sum(cpu_s(p) for p in server_pids or [])
        ctl0 = cpu_s(ctl.proc.pid)
        t0 = time.monotonic()
        done: list[float] = []
        watcher = threading.Thread(
            target=lambda: done.append(count_secrets_until(gw, app_ns, n, 900)), daemon=True
        )
        watcher.start()
        t_create = parallel(lambda o: gw.request("POST", sealed_path(app_ns), body=o), sealed)
        watcher.join()
        total = done[0] - t0
        rss = rss_mb(ctl.proc.pid)
        ctl_cpu = cpu_s(ctl.proc.pid) - ctl0
        server_cpu = sum(cpu_s(p) for p in server_pids or []) - servers0
    finally:
        ctl.stop()
    api.close()
    return {
        "n": n,
        "direct_create_s": t_direct,
        "rsa_floor_s": t_rsa,
        "floor_s": floor,
        "sealed_create_s": t_create,
        "controller_s": total,
        "ratio": total / floor,
        "rss_mb_after": rss,
        "controller_cpu_s": ctl_cpu,
        "apiserver_etcd_cpu_s": server_cpu,
        "rsa_cpu_s": t_rsa_cpu,
    }


def bench_keys(rounds: int, bits: int = 4096) -> list[dict[str, float]]:
    keys = [entry(bits, days_old=24 - i)[0] for i in range(24)]  # oldest first
    out = []
    for count in (1, 12, 24):
        ring = keys[:count]
        oldest = ring[0]
        obj = seal_secret(secret("s", "app", 1), oldest.public_key)
        obj["metadata"]["uid"] = "u"
        cold, warm = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            plan = plan_reconcile(obj, None, ring)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            plan_reconcile(obj, None, ring, hint=plan.opened_by)
            warm.append(time.perf_counter() - t0)
        out.append(
            {
                "keys": count,
                "hinted_ms": statistics.median(warm) * 1e3,
                "unhinted_ms": statistics.median(cold) * 1e3,
            }
        )
    return out


def bench_rss(
    kubeconfig: str, m: int, work: Path, tag: str = "", settle_s: float = 35
) -> dict[str, float]:

    api, gw = crd_gateway(kubeconfig)
    rss_ns, keys_ns = f"rss{tag}", f"rsskeys{tag}"
    for ns in (rss_ns, keys_ns):
        gw.request("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    ent, manifest = entry(4096)
    manifest["metadata"]["namespace"] = keys_ns
    gw.create_secret(keys_ns, manifest)
    one = seal_secret(secret("x", rss_ns, 0), ent.public_key, scope=None)
    # namespace-wide scope: one sealed spec serves every name (sealing 10k is not the point)
    from sealkit.scopes import Scope

    one = seal_secret(secret("x", rss_ns, 0), ent.public_key, scope=Scope.NAMESPACE_WIDE)

    def make(i: int) -> None:
        obj = json.loads(json.dumps(one))
        obj["metadata"]["name"] = f"s{i:05d}"
        obj["spec"]["template"]["metadata"]["name"] = f"s{i:05d}"
        gw.request("POST", sealed_path(rss_ns), body=obj)

    t_fill = parallel(make, list(range(m)))
    print(
        f"memory: {m} SealedSecrets created in {t_fill:.0f}s; starting the controller", flush=True
    )
    ctl = start_controller(kubeconfig, keys_ns, rss_ns, work / "controller-rss.log", 300)
    try:
        t_start = time.monotonic()
        t_sync = count_secrets_until(gw, rss_ns, m, 1800) - t_start
        time.sleep(settle_s)  # steady state: let the controller settle (and trim its heap)
        rss = rss_mb(ctl.proc.pid)
    finally:
        ctl.stop()
    api.close()
    return {"m": m, "fill_s": t_fill, "rss_mb": rss, "until_all_secrets_s": t_sync}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rss-n", type=int, default=10000)
    ap.add_argument("--key-rounds", type=int, default=5)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-keys", action="store_true")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="CI: 20 and 50 SealedSecrets, RSA-2048 keys for the key rows, no settling; reuses "
        "a healthy .devstack stack (own namespaces, deleted after); exit 1 unless ratios compute",
    )
    args = ap.parse_args()
    import devstack

    if args.quick:
        args.n, args.rss_n, args.key_rounds = 20, 50, 1
    work = Path(tempfile.mkdtemp(prefix="controller-bench-"))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}
    results["keys"] = (
        [] if args.skip_keys else bench_keys(args.key_rounds, 2048 if args.quick else 4096)
    )
    for row in results["keys"]:
        print(
            f"keys={row['keys']:2d}  unseal with hint {row['hinted_ms']:.1f} ms   "
            f"without hint (oldest key) {row['unhinted_ms']:.1f} ms",
            flush=True,
        )
    stack, own, tag = None, False, ""
    if not (args.skip_throughput and args.skip_rss):
        stack_dir = os.environ.get("SEALKIT_BENCH_STACK_DIR") or None
        shared = devstack.load_healthy(stack_dir) if args.quick else None
        if shared is not None and shared.kubeconfig and "kube" not in shared.missing:
            stack, tag = shared, f"-q{os.getpid()}"
        else:
            stack, own = devstack.up(work / "stack", parts=("kube",), quiet=True), True
    try:
        if stack is not None and not args.skip_throughput:
            pids = [
                r.pid for name, r in stack.processes.items() if name in ("etcd", "kube-apiserver")
            ]
            t = bench_throughput(stack.kubeconfig, args.n, work, pids, tag=tag)
            results["throughput"] = t
            print(
                f"throughput: {t['n']} SealedSecrets -> Secrets in {t['controller_s']:.1f}s; "
                f"floor {t['floor_s']:.1f}s (direct creates {t['direct_create_s']:.1f}s, "
                f"{3 * t['n']} RSA-4096 decryptions {t['rsa_floor_s']:.1f}s) -> "
                f"ratio {t['ratio']:.2f}x (target <= 1.5x); CPU: controller "
                f"{t['controller_cpu_s']:.1f}s, apiserver+etcd {t['apiserver_etcd_cpu_s']:.1f}s, "
                f"raw RSA {t['rsa_cpu_s']:.1f}s",
                flush=True,
            )
        if stack is not None and not args.skip_rss:
            r = bench_rss(
                stack.kubeconfig, args.rss_n, work, tag=tag, settle_s=1 if args.quick else 35
            )
            results["rss"] = r
            print(
                f"memory: {r['m']} SealedSecrets (+{r['m']} Secrets) -> RSS {r['rss_mb']:.0f} "
                "MB (target <= 150 MB)",
                flush=True,
            )
    finally:
        if stack is not None and own:
            stack.stop()
        elif stack is not None and tag:
            _delete_namespaces(stack.kubeconfig, tag)
    print(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    computed = [row[k] for row in results["keys"] for k in ("hinted_ms", "unhinted_ms")]
    if "throughput" in results:
        computed.append(results["throughput"]["ratio"])
    if "rss" in results:
        computed.append(results["rss"]["rss_mb"])
    if not all(math.isfinite(v) and v > 0 for v in computed):
        print("error: a ratio or figure could not be computed", file=sys.stderr)
        return 1
    return 0


def _delete_namespaces(kubeconfig: str, tag: str) -> None:
    """The shared stack keeps running: remove what the quick run created there."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)
    gw = RealKubeGateway(api, qps=0, burst=1)
    for ns in ("floor", "app", "keys", "rss", "rsskeys"):
        try:
            gw.request("DELETE", f"/api/v1/namespaces/{ns}{tag}")
        except Exception as exc:  # noqa: BLE001 - best effort: the namespace may not exist
            print(f"warning: namespace {ns}{tag} not deleted: {exc}", file=sys.stderr)
    api.close()


if __name__ == "__main__":
    sys.exit(main())
