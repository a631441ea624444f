"""Bench: vault-bootstrap vs the equivalent shell script of `bao` CLI calls, same OpenBao.

For each round, on a private OpenBao dev server (restarted empty before each first run) and a
private PostgreSQL (both started here via devstack, so the shared stack is never touched):

1. first run of ``bench/vault_chapter.sh`` (8 ``bao`` calls), then its re-run;
2. first ``vault-bootstrap apply -f examples/vault-bootstrap/chapter.yaml``, then its re-run
   (which makes zero writes).

Both sides are fresh processes, as a Job runs them. Reported: medians and the ratios
vault-bootstrap / script (targets: first apply <= 0.5x, re-run <= 0.3x). Usage::

    .venv/bin/python bench/vault_bootstrap_bench.py [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHAPTER = ROOT / "examples" / "vault-bootstrap" / "chapter.yaml"
SCRIPT = ROOT / "bench" / "vault_chapter.sh"
CLI = [str(ROOT / ".venv" / "bin" / "vault-bootstrap")]


def _ca(path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=str(ROOT))
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    from devstack import binaries
    from devstack.components import OpenBaoServer, PostgresServer

    work = Path(tempfile.mkdtemp(prefix="vb-bench-"))
    ca = work / "ca.crt"
    _ca(ca)
    bao = OpenBaoServer(work / "bao")
    pg = PostgresServer(work / "pg", name="vb-bench-pg")
    bao.start()
    pg.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "PG"))}
        env.update(
            BAO=binaries.bao(), BAO_ADDR=bao.addr, BAO_TOKEN=bao.token,
            KUBE_APISERVER_URL="https://127.0.0.1:6443", KUBE_CA_FILE=str(ca),
            PGHOST=pg.host, PGPORT=str(pg.port), PGUSER=pg.user, PGPASSWORD=pg.password,
            PGDATABASE=pg.database, NAME_SERVICE_TOKEN="bench-name-service-token",
        )
        script = ["bash", str(SCRIPT)]
        apply = [*CLI, "apply", "-f", str(CHAPTER)]
        times: dict[str, list[float]] = {k: [] for k in ("script1", "script2", "vb1", "vb2")}
        _timed(["bash", "-c", f"{binaries.bao()} version"], env)  # warm caches
        for _ in range(args.rounds):
            bao.stop()
            bao.start()
            times["script1"].append(_timed(script, env))
            times["script2"].append(_timed(script, env))
            bao.stop()
            bao.start()
            times["vb1"].append(_timed(apply, env))
            times["vb2"].append(_timed(apply, env))
    finally:
        bao.stop()
        pg.destroy()
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "rounds": args.rounds,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "first_apply_ratio": round(med["vb1"] / med["script1"], 3),
        "rerun_ratio": round(med["vb2"] / med["script2"], 3),
        "load_avg_1m": os.getloadavg()[0],
    }
    print(
        f"vault-bootstrap bench ({args.rounds} rounds, medians): "
        f"script first {med['script1']:.3f}s, re-run {med['script2']:.3f}s; "
        f"vault-bootstrap first {med['vb1']:.3f}s, re-run {med['vb2']:.3f}s; "
        f"ratios first {result['first_apply_ratio']:.2f}x (target <= 0.5x), "
        f"re-run {result['rerun_ratio']:.2f}x (target <= 0.3x)"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
