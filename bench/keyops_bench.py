"""Bench: `sealkit keys report` and `sealkit reencrypt-tree` on a tree of N SealedSecrets.

The tree: N SealedSecrets (3 values each, RSA-4096 keys, the controller's default), half sealed
with an old key and half with the current one, one per file over 10 directories. Side by side
in one run:

1. ``sealkit keys report DIR --recovery-private-key keys.yaml`` (one process);
2. ``sealkit reencrypt-tree DIR --recovery-private-key keys.yaml --cert new.pem`` (re-seals the
   N/2 old ones, keeps the others), then the same with ``--check`` (nothing stale: 3N opens);
3. the real peer: upstream has no report and no tree re-encryption, so the nearest is one
   ``kubeseal --recovery-unseal --recovery-private-key keys.yaml -f F`` per file (it must open
   every value to print the Secret). Run on ``--kubeseal-sample`` files and scaled to N, to
   spare the shared machine;
4. the floor: `sealkit.crypto.unseal` of every value with the right key first, in-process.

Load is recorded (`os.getloadavg`) before and after: the machine is shared with builds.
Usage::

    .venv/bin/python bench/keyops_bench.py [--secrets 1000] [--kubeseal-sample 100] [--json F]

``--quick`` (CI, ``bench/run.sh --quick``): 20 Secrets, 3 kubeseal runs; exit 1 unless every
ratio is computed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    cpu0, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if proc.returncode not in ok:
        raise SystemExit(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return elapsed, cpu


def make_tree(root: Path, n: int, old: object, new: object) -> list[tuple[bytes, bytes, object]]:
    """Write the tree; return (blob, label, key) for the floor."""
    from sealkit.crypto import b64decode
    from sealkit.model import seal_secret
    from sealkit.output import to_yaml
    from sealkit.scopes import Scope, label_for

    items = []
    for i in range(n):
        key = old if i % 2 == 0 else new
        ns, name = f"team{i % 10}", f"secret-{i:04d}"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {
                "username": f"user-{i}",
                "password": os.urandom(12).hex(),
                "url": f"postgres://db-{i}.internal:5432/app{i}",
            },
        }
        sealed = seal_secret(secret, key.public_key())  # type: ignore[attr-defined]
        app = root / f"app{i % 10}"
        app.mkdir(exist_ok=True)
        (app / f"{name}.sealed.yaml").write_text(to_yaml(sealed))
        for v in sealed["spec"]["encryptedData"].values():
            items.append((b64decode(v), label_for(Scope.STRICT, ns, name), key))
    return items


def time_floor(items: list[tuple[bytes, bytes, object]]) -> tuple[float, float]:
    from sealkit.crypto import unseal

    cpu0, start = time.process_time(), time.perf_counter()
    for blob, label, key in items:
        unseal(blob, [key], label)  # type: ignore[list-item]
    return time.perf_counter() - start, time.process_time() - cpu0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=1000)
    parser.add_argument("--kubeseal-sample", type=int, default=100)
    parser.add_argument("--kubeseal", default=None, help="kubeseal binary (default: devstack's)")
    parser.add_argument("--no-kubeseal", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="CI: 20 Secrets, 3 kubeseal runs; ratios must compute"
    )
    args = parser.parse_args()
    if args.quick:
        args.secrets, args.kubeseal_sample = 20, 3
    if args.kubeseal is None and not args.no_kubeseal:
        from devstack.binaries import kubeseal as find_kubeseal

        args.kubeseal = find_kubeseal()

    import yaml
    from cryptography.hazmat.primitives import serialization

    from sealkit.keys import generate_key_and_cert, key_secret_manifest

    sealkit = str(Path(sys.executable).with_name("sealkit"))
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sealkit-bench-keyops-") as tmp:
        work = Path(tmp)
        (old, old_cert), (new, new_cert) = generate_key_and_cert(4096), generate_key_and_cert(4096)
        keys = work / "keys.yaml"
        keys.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        key_secret_manifest(k, c, name=f"sealed-secrets-key{i}")
                        for i, (k, c) in enumerate([(old, old_cert), (new, new_cert)])
                    ],
                }
            )
        )
        cert = work / "new.pem"
        cert.write_bytes(new_cert.public_bytes(serialization.Encoding.PEM))
        tree = work / "tree"
        tree.mkdir()
        items = make_tree(tree, args.secrets, old, new)

        keys_report = [sealkit, "keys", "report", str(tree), "--recovery-private-key", str(keys)]
        keys_report += ["-o", "json"]
        reencrypt = [sealkit, "reencrypt-tree", str(tree), "--recovery-private-key", str(keys)]
        reencrypt += ["--cert", str(cert)]
        report = run_timed(keys_report)
        reenc = run_timed(reencrypt)
        check = run_timed([*reencrypt, "--check"])
        report2 = run_timed(keys_report)
        floor = time_floor(items)
        ks = (float("nan"), float("nan"))
        sample = min(args.kubeseal_sample, args.secrets)
        if not args.no_kubeseal:
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "SEALED_SECRETS"))
            }
            env["HOME"] = str(work)
            files = sorted(tree.rglob("*.sealed.yaml"))[:sample]
            cpu0, start = _children_cpu(), time.perf_counter()
            for f in files:
                subprocess.run(
                    [
                        args.kubeseal,
                        "--recovery-unseal",
                        "--recovery-private-key",
                        str(keys),
                        "-f",
                        str(f),
                    ],
                    capture_output=True,
                    env=env,
                    check=True,
                )
            scale = args.secrets / len(files)
            ks = ((time.perf_counter() - start) * scale, (_children_cpu() - cpu0) * scale)
    load1 = os.getloadavg()
    n = args.secrets
    result = {
        "secrets": n,
        "values": 3 * n,
        "key_bits": 4096,
        "keys": 2,
        "cpus": os.cpu_count(),
        "load_avg_1m_before": round(load0[0], 2),
        "load_avg_1m_after": round(load1[0], 2),
        "keys_report_wall_s": round(report[0], 2),
        "keys_report_cpu_s": round(report[1], 2),
        "keys_report_all_current_wall_s": round(report2[0], 2),
        "reencrypt_half_stale_wall_s": round(reenc[0], 2),
        "reencrypt_half_stale_cpu_s": round(reenc[1], 2),
        "reencrypt_check_wall_s": round(check[0], 2),
        "reencrypt_check_cpu_s": round(check[1], 2),
        "kubeseal_recovery_unseal_x_n_wall_s": round(ks[0], 2),
        "kubeseal_recovery_unseal_x_n_cpu_s": round(ks[1], 2),
        "kubeseal_sample_files": sample,
        "floor_unseal_wall_s": round(floor[0], 2),
        "floor_unseal_cpu_s": round(floor[1], 2),
    }
    print(
        f"{n} SealedSecrets x 3 values, RSA-4096, 2 keys (half stale); load "
        f"{load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"  {'':52} {'wall s':>8} {'CPU s':>8}")
    rows = [
        ("sealkit keys report (offline)", report),
        ("sealkit keys report, all on the newest key", report2),
        ("sealkit reencrypt-tree (offline, N/2 re-sealed)", reenc),
        ("sealkit reencrypt-tree --check (nothing stale)", check),
        (f"kubeseal --recovery-unseal x {n} (from {sample})", ks),
        ("floor: sealkit.crypto.unseal, right key first", floor),
    ]
    for label, (w, c) in rows:
        print(f"  {label:52} {w:8.2f} {c:8.2f}")
    ratios = {
        "keys_report_vs_kubeseal": _ratio(report[0], ks[0]),
        "reencrypt_vs_kubeseal": _ratio(reenc[0], ks[0]),
        "keys_report_vs_floor": _ratio(report[0], floor[0]),
    }
    result["ratios_wall"] = {k: round(v, 3) for k, v in ratios.items()}
    print("  ratios (wall): " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    checked = [v for k, v in ratios.items() if not (args.no_kubeseal and "kubeseal" in k)]
    if not all(math.isfinite(v) and v > 0 for v in checked):
        print("error: a ratio could not be computed", file=sys.stderr)
        return 1
    return 0


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
