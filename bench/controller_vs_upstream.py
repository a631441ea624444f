"""sealkit-controller side by side with upstream's controller v0.40.0 (issue 17).

How they run (the same for both, so the comparison is fair): host processes on the stack's
control plane, each in a private mount namespace that carries one ServiceAccount token
(cluster-admin) + CA at the in-cluster path, KUBERNETES_SERVICE_HOST/PORT = the stack's apiserver
on loopback (`bench/_incluster.py`). Same identity, same TLS/token path, same client limits
(`--kubeclient-qps/--kubeclient-burst`), same pre-created Bitnami key Secrets; one controller at a
time, the order alternating per scenario. Each uses its own defaults otherwise (upstream: one
worker; sealkit: 8 workers, leader election on its Lease, as deployed). Upstream v0.40.0 has no
leader election, so "first Secret after a leader change" is measured as restart -> first Secret.

Measures, from /proc/<pid> of the controller: CPU (utime+stime), peak RSS (VmHWM), steady RSS
(VmRSS after a quiet period). Scenarios:
  startup     exec -> /healthz 200 and /v1/cert.pem served (1 key, nothing to unseal)
  throughput  N SealedSecrets (RSA-4096, 3 values, strict scope) created by 8 client threads
              against the ready controller; wall = first create -> all N Secrets exist
  restart     after the first throughput run: stop, create one SealedSecret, start; exec ->
              that Secret exists (named to sort first, so it is the first Secret either writes)
  keys        1, 12, 24 keys in the key namespace, every SealedSecret sealed by the oldest key
              (sealkit's worst case): controller CPU per SealedSecret

Usage: python bench/controller_vs_upstream.py [--quick] [--n 1000 10000] [--keys 1 12 24]
Reuses a healthy stack in .devstack/ (its control plane only), else starts a private one.
Exit 0 when every ratio was computed (targets are reported, not enforced); 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import _incluster as ic  # noqa: E402
import _vs_report as rep  # noqa: E402
from controller_bench import count_secrets_until, entry, install_crd, parallel, secret  # noqa: E402

from controller.kube_gateway import ApiError, RealKubeGateway, sealed_path  # noqa: E402
from sealkit.model import seal_secret  # noqa: E402

UPSTREAM = Path.home() / ".cache/sealkit/sealed-secrets-it-v0.40.0/controller"
CTLS = ("sealkit", "upstream")


class Bench:
    def __init__(self, stack: Any, args: argparse.Namespace, work: Path) -> None:
        from kubernetes import config

        self.args, self.work, self.rid = args, work, f"ub{int(time.time()) % 100000}"
        self.api = config.new_client_from_config(config_file=stack.kubeconfig)
        self.api.configuration.connection_pool_maxsize = 32
        self.gw = RealKubeGateway(self.api, qps=0, burst=1)
        host, port = stack.apiserver_url.removeprefix("https://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.namespaces: list[str] = []
        self.empty = ""
        self.sa = work / "sa"
        self.sa.mkdir()
        install_crd(self.gw)
        self._service_account(stack.ca_file)
        most = max([1, *args.keys])
        self.keys = [entry(4096, days_old=most - i) for i in range(most)]
        self.oldest = self.keys[0][0]
        for k in sorted({1, *args.keys}):
            ns = self.ns(f"keys{k}")
            for _, manifest in self.keys[:k]:
                self.gw.create_secret(
                    ns, {**manifest, "metadata": {**manifest["metadata"], "namespace": ns}}
                )

    def ns(self, name: str) -> str:
        full = f"{self.rid}-{name}"
        self.gw.request("POST", "/api/v1/namespaces", body={"metadata": {"name": full}})
        self.namespaces.append(full)
        return full

    def _service_account(self, ca_file: str) -> None:
        ns = self.ns("sa")
        self.gw.request(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            body={"metadata": {"name": "controller"}},
        )
        self.binding = f"{self.rid}-controller"
        self.gw.request(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            body={
                "metadata": {"name": self.binding},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": ns}],
            },
        )
        tok = self.gw.request(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts/controller/token",
            body={"spec": {"expirationSeconds": 6 * 3600}},
        )
        (self.sa / "token").write_text(tok["status"]["token"])
        shutil.copy(ca_file, self.sa / "ca.crt")

    def start(self, ctl: str, key_ns: str, app_ns: str) -> ic.Running:
        common = [
            "--all-namespaces=false",
            "--additional-namespaces",
            app_ns,
            "--listen-addr",
            "127.0.0.1:{port}",
            "--listen-metrics-addr",
            "127.0.0.1:{mport}",
            "--kubeclient-qps",
            str(self.args.qps),
            "--kubeclient-burst",
            str(self.args.burst),
            "--key-renew-period",
            "0",
            "--log-level",
            "ERROR",
        ]
        argv = (
            [sys.executable, "-m", "controller.main", "--namespace", key_ns, *common]
            if ctl == "sealkit"
            else [str(UPSTREAM), *common]
        )
        log = self.work / f"{ctl}.log"
        return ic.start(ctl, argv, self.sa, self.host, self.port, key_ns, log, REPO)

    def seal(self, ns: str, n: int, pub: Any, first: int = 0) -> list[dict[str, Any]]:
        return [seal_secret(secret(f"s{i:05d}", ns, i), pub) for i in range(first, first + n)]

    # -- scenarios ------------------------------------------------------------------------
    def converge(self, ctl: str, key_ns: str, app_ns: str, objs: list[Any]) -> dict[str, Any]:
        r = self.start(ctl, key_ns, app_ns)
        try:
            r.wait_ready(self.args.timeout)
            time.sleep(1)
            c0, t0, done = ic.cpu_s(r.pid), time.monotonic(), []
            w = threading.Thread(
                target=lambda: done.append(self.count_until(app_ns, len(objs), t0)), daemon=True
            )
            w.start()
            t_create = parallel(
                lambda o: self.gw.request("POST", sealed_path(app_ns), body=o), objs
            )
            w.join()
            (t_end, count), cpu = done[0], ic.cpu_s(r.pid) - c0
            wall = t_end - t0
            peak = ic.mem_mb(r.pid)["peak_rss_mb"]
            time.sleep(self.args.settle)
            steady = ic.mem_mb(r.pid)["rss_mb"]
            if r.proc.poll() is not None:
                raise RuntimeError(f"{ctl} exited during the run; see {r.log}")
        finally:
            r.stop()
        return {
            "ready_s": r.ready_s,
            "create_s": t_create,
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_per_ss_ms": cpu / max(count, 1) * 1e3,
            "secrets": count,
            "converged": count >= len(objs),
            "peak_rss_mb": peak,
            "steady_rss_mb": steady,
        }

    def count_until(self, ns: str, n: int, t0: float) -> tuple[float, int]:
        """(time, count) when n Secrets exist, or at t0 + --budget with the count reached then
        (a run that did not converge: its CPU per SealedSecret is per Secret written)."""
        try:
            return count_secrets_until(self.gw, ns, n, t0 + self.args.budget - time.monotonic()), n
        except RuntimeError:
            page = self.gw.request("GET", f"/api/v1/namespaces/{ns}/secrets", query=[("limit", 1)])
            meta = page.get("metadata") or {}
            return time.monotonic(), len(page["items"]) + int(meta.get("remainingItemCount") or 0)

    def startup(self, ctl: str) -> dict[str, float]:
        r = self.start(ctl, self.keyns(1), self.empty)
        try:
            ready = r.wait_ready(self.args.timeout)
            return {"ready_s": ready, "cpu_s": ic.cpu_s(r.pid), **ic.mem_mb(r.pid)}
        finally:
            r.stop()

    def restart(self, ctl: str, app_ns: str) -> dict[str, float]:
        late = seal_secret(secret("a-late", app_ns, 0), self.oldest.public_key)
        self.gw.request("POST", sealed_path(app_ns), body=late)
        r = self.start(ctl, self.keyns(1), app_ns)
        try:
            ready: list[float] = []
            threading.Thread(
                target=lambda: ready.append(r.wait_ready(self.args.timeout)), daemon=True
            ).start()
            deadline = time.monotonic() + self.args.timeout
            while self.gw.get_secret(app_ns, "a-late") is None:
                if time.monotonic() > deadline or r.proc.poll() is not None:
                    raise RuntimeError(f"{ctl}: no Secret after restart; see {r.log}")
                time.sleep(0.02)
            first = time.monotonic() - r.t_exec
            while not ready and time.monotonic() < deadline:
                time.sleep(0.02)
            return {"ready_s": ready[0] if ready else math.nan, "first_secret_s": first}
        finally:
            r.stop()

    def keyns(self, k: int) -> str:
        return f"{self.rid}-keys{k}"

    def cleanup(self) -> None:
        for ns in self.namespaces:
            try:
                self.gw.request("DELETE", f"/api/v1/namespaces/{ns}")
            except ApiError:
                pass
        try:
            self.gw.request(
                "DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{self.binding}"
            )
        except ApiError:
            pass
        self.api.close()


def order(i: int) -> tuple[str, str]:
    """Alternate who goes first, so neither always runs on the warmer/colder apiserver."""
    return CTLS if i % 2 == 0 else (CTLS[1], CTLS[0])


def pair(res: dict[str, Any], key: str) -> float:
    return rep.ratio(res["sealkit"][key], res["upstream"][key])


def run(b: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """Start-up, the first N (+ restart), the key counts, then the larger N (the long part last)."""
    res: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "qps": args.qps,
        "burst": args.burst,
        "startup": [],
        "restart": [],
        "throughput": [],
        "keys": [],
    }
    b.empty = b.ns("empty")
    if args.startup_rounds:
        res["startup"].append(startup(b, args.startup_rounds))
    for j, n in enumerate(args.n):
        if j == 1:
            res["keys"] = [keys(b, k, args.keys_n, i) for i, k in enumerate(args.keys)]
        res["throughput"].append(throughput(b, n, j, restart=n == args.restart_n, res=res))
    if len(args.n) < 2:
        res["keys"] = [keys(b, k, args.keys_n, i) for i, k in enumerate(args.keys)]
    return res


def startup(b: Bench, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CTLS}
    load0 = os.getloadavg()[0]
    for i in range(rounds):
        for ctl in order(i):
            runs[ctl].append(b.startup(ctl))
    st: dict[str, Any] = {
        c: {k: statistics.median(x[k] for x in runs[c]) for k in runs[c][0]} for c in CTLS
    }
    st["load"] = [load0, os.getloadavg()[0]]
    st["ratio_ready"] = pair(st, "ready_s")
    print(f"startup: {json.dumps(st)}", flush=True)
    return st


def throughput(b: Bench, n: int, i: int, *, restart: bool, res: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"n": n, "load": [os.getloadavg()[0]]}
    nss = {c: b.ns(f"tp{n}-{c}") for c in CTLS}
    objs = {c: b.seal(nss[c], n, b.oldest.public_key) for c in CTLS}
    for ctl in order(i):
        row[ctl] = b.converge(ctl, b.keyns(1), nss[ctl], objs[ctl])
        print(f"throughput {n} {ctl}: {json.dumps(row[ctl])}", flush=True)
    row["load"].append(os.getloadavg()[0])
    for name, key in (("wall", "wall_s"), ("cpu", "cpu_s"), ("peak_rss", "peak_rss_mb")):
        row[f"ratio_{name}"] = pair(row, key)
    if restart:
        rs: dict[str, Any] = {"existing": n, "load": [os.getloadavg()[0]]}
        for ctl in order(i):
            rs[ctl] = b.restart(ctl, nss[ctl])
            print(f"restart ({n} existing) {ctl}: {json.dumps(rs[ctl])}", flush=True)
        rs["load"].append(os.getloadavg()[0])
        rs["ratio_ready"] = pair(rs, "ready_s")
        rs["ratio_first_secret"] = pair(rs, "first_secret_s")
        res["restart"].append(rs)
    return row


def keys(b: Bench, k: int, n: int, i: int) -> dict[str, Any]:
    row: dict[str, Any] = {"keys": k, "n": n, "load": [os.getloadavg()[0]]}
    nss = {c: b.ns(f"k{k}-{c}") for c in CTLS}
    for ctl in order(i):
        objs = b.seal(nss[ctl], n, b.oldest.public_key)
        row[ctl] = b.converge(ctl, b.keyns(k), nss[ctl], objs)
        print(f"keys {k} {ctl}: {json.dumps(row[ctl])}", flush=True)
    row["load"].append(os.getloadavg()[0])
    row["ratio_cpu_per_ss"] = pair(row, "cpu_per_ss_ms")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI smoke: 20 SS, 1 and 2 keys")
    ap.add_argument("--n", type=int, nargs="*", default=[1000, 10000], help="none: skip")
    ap.add_argument("--keys", type=int, nargs="*", default=[1, 12, 24], help="none: skip")
    ap.add_argument("--restart-n", type=int, default=1000, help="restart after this N's run")
    ap.add_argument(
        "--budget", type=float, default=1800, help="seconds per converge run, then partial"
    )
    ap.add_argument("--keys-n", type=int, default=100, help="SealedSecrets per key count")
    ap.add_argument("--startup-rounds", type=int, default=3, help="0: skip")
    ap.add_argument("--qps", type=float, default=500, help="both controllers' client QPS")
    ap.add_argument("--burst", type=int, default=1000, help="both controllers' client burst")
    ap.add_argument("--settle", type=float, default=20, help="quiet seconds before steady RSS")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.n, args.keys, args.keys_n = [20], [1, 2], 10
        args.startup_rounds, args.settle, args.timeout = 1, 2, 120
        args.restart_n, args.budget = 20, 120
    if not UPSTREAM.exists():
        print(
            f"upstream's controller is missing: {UPSTREAM} (devstack/build-binaries.sh "
            "sealed-secrets-it)",
            file=sys.stderr,
        )
        return 1
    import devstack

    # SIGTERM (CI's timeout, a Ctrl-C'ed make) unwinds, so the `finally`s stop the controllers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    work = Path(tempfile.mkdtemp(prefix="ctl-vs-upstream-"))
    stack = devstack.load_healthy(os.environ.get("SEALKIT_BENCH_STACK_DIR") or REPO / ".devstack")
    own = stack is None
    if own:
        stack = devstack.up(work / "stack", parts=("kube",), quiet=True)
    b = None
    try:
        b = Bench(stack, args, work)
        res = run(b, args)
    except Exception as exc:  # noqa: BLE001 - one line, logs kept for a look
        print(f"controller_vs_upstream: {exc} (logs in {work})", file=sys.stderr)
        return 1
    finally:
        if b is not None and not own:
            b.cleanup()
        if own:
            stack.stop()
    res["targets"] = rep.targets(res)
    print(json.dumps(res, indent=2))
    print(rep.tables(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    partial = [r for r in res["throughput"] + res["keys"] for c in CTLS if not r[c]["converged"]]
    if args.quick and partial:
        print("controller_vs_upstream: a run did not converge", file=sys.stderr)
        return 1
    ratios = rep.all_ratios(res)
    if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
        print(f"controller_vs_upstream: a ratio was not computed: {ratios}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
