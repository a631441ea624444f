"""Bench: vault-bootstrap at scale (N apps) vs the equivalent `bao` CLI script (issue 17).

The config and the script come from `bench/vault_scale_gen.py` (default 300 apps: 300
Kubernetes auth roles, 300 policies, 300 KV entries, 30 database roles on one PostgreSQL
connection). Each round, on a private OpenBao dev server restarted empty before each first run,
and the stack's PostgreSQL (this checkout's `.devstack`, else a private one):

1. the script's first run, then its re-run (it rewrites everything every time);
2. `vault-bootstrap plan` (fresh server), first `apply`, `plan` again (in sync) and the re-run
   `apply`, which must make 0 writes;
3. with `--sequential`, the same first apply and re-run with `--concurrency 1`.

Every side is a fresh process, as a Job runs it. Reported: wall-time medians, the ratios
vault-bootstrap / script (targets: re-run <= 0.1x with 0 writes, first apply <= 0.3x), the
Vault API calls of each vault-bootstrap run (from its own `vault api calls:` log line, counted
in the gateway) and of the script (one write per CLI call, plus the mount-info read `bao kv
put` makes first), and the 1-minute load average. Usage::

    .venv/bin/python bench/vault_bootstrap_scale.py [--apps 300] [--rounds 1] [--json out]
    .venv/bin/python bench/vault_bootstrap_scale.py --quick   # CI: 3 apps, 1 round, < 1 min

Exit status: 0 when every run succeeded, the re-run made 0 writes and the ratios were computed
(targets missed are reported, not fatal: the machine's load decides them); 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from _vault_env import cli_env, private_postgres, server_version, write_ca  # noqa: E402

CLI = str(ROOT / ".venv" / "bin" / "vault-bootstrap")
TARGETS = {"apply_first": 0.3, "apply_rerun": 0.1}
_CALLS = re.compile(
    r"vault api calls: (\d+) \(([^)]*)\); 429s=(\d+), retries=(\d+), max in flight=(\d+)"
)


class BenchFailed(Exception):
    pass


def parse_calls(stderr: str) -> dict[str, Any]:
    """The gateway's call counts from vault-bootstrap's info line (`-v`)."""
    m = _CALLS.search(stderr)
    if not m:
        raise BenchFailed("vault-bootstrap printed no 'vault api calls:' line")
    kinds = {k: int(v) for k, v in re.findall(r"([\w-]+)=(\d+)", m.group(2))}
    return {
        "total": int(m.group(1)),
        "reads": kinds.get("read", 0) + kinds.get("list", 0),
        "writes": kinds.get("write", 0) + kinds.get("delete", 0),
        "by_kind": kinds,
        "rate_limited": int(m.group(3)),
        "max_in_flight": int(m.group(5)),
    }


def _run(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """(wall seconds, stderr) of one run; a failure (exit not in `ok`) aborts the bench."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=str(ROOT), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        tail = (proc.stderr or proc.stdout)[-400:]
        raise BenchFailed(
            f"{Path(argv[0]).name} {' '.join(argv[1:2])} exited {proc.returncode}: {tail}"
        )
    return elapsed, proc.stderr


def script_calls(script: Path) -> dict[str, int]:
    """API calls of one script run: one write per CLI call, one mount read per `kv put`."""
    text = script.read_text()
    cli = len(re.findall(r'^"\$BAO" ', text, flags=re.M))
    kv = len(re.findall(r'^"\$BAO" kv put ', text, flags=re.M))
    return {"cli_processes": cli, "writes": cli, "reads": kv, "total": cli + kv}


def _postgres(work: Path) -> tuple[dict[str, str], Any]:
    """PG* of the stack's PostgreSQL (this checkout's .devstack), else of a private one."""
    import devstack

    stack = devstack.load_healthy(os.environ.get("SEALKIT_BENCH_STACK_DIR") or None)
    if stack is not None and not stack.missing.get("postgres") and stack.pg_host:
        env = {k: v for k, v in stack.env.items() if k.startswith("PG") and v}
        return env, None
    return private_postgres(work, "vb-scale-pg")


def bench(args: argparse.Namespace) -> dict[str, Any]:
    from vault_scale_gen import write_all

    from devstack.vault_server import dev_server

    work = Path(tempfile.mkdtemp(prefix="vb-scale-"))
    ca = work / "ca.crt"
    write_ca(ca)
    config, script = write_all(args.apps, work / "gen", db_roles=args.db_roles)
    script_api = script_calls(script)
    pg_env, private_pg = _postgres(work)
    bao = dev_server("openbao", work / "openbao")
    times: dict[str, list[float]] = {}
    calls: dict[str, dict[str, Any]] = {}
    try:
        bao.start()
        env = cli_env(bao, ca, pg_env)
        conc = ["--concurrency", str(args.concurrency)]

        def vb_cmd(cmd: str, *extra: str) -> list[str]:
            return [CLI, cmd, "-v", "-f", str(config), *extra]

        def side_script() -> None:
            bao.stop()
            bao.start()
            times.setdefault("script_first", []).append(_run(["bash", str(script)], env)[0])
            times.setdefault("script_rerun", []).append(_run(["bash", str(script)], env)[0])

        def side_vb() -> None:
            bao.stop()
            bao.start()
            runs = [
                ("plan_fresh", "plan", (2,)),
                ("apply_first", "apply", (0,)),
                ("plan_in_sync", "plan", (0,)),
                ("apply_rerun", "apply", (0,)),
            ]
            if args.quick:  # CI's time budget: the plan on an empty server is left out
                runs = runs[1:]
            for key, cmd, ok in runs:
                wall, err = _run(vb_cmd(cmd, *conc), env, ok)
                times.setdefault(key, []).append(wall)
                calls[key] = parse_calls(err)
            if calls["apply_rerun"]["writes"] != 0:
                raise BenchFailed(f"re-run made {calls['apply_rerun']['writes']} writes, not 0")

        def side_seq() -> None:
            bao.stop()
            bao.start()
            for key, cmd in (("seq_apply_first", "apply"), ("seq_apply_rerun", "apply")):
                wall, err = _run(vb_cmd(cmd, "--concurrency", "1"), env)
                times.setdefault(key, []).append(wall)
                calls[key] = parse_calls(err)

        sides = [side_script, side_vb] + ([side_seq] if args.sequential else [])
        _run([bao.binary, "version"], env)  # warm the page cache for both sides
        for i in range(args.rounds):
            # Rotate which side goes first, so drifting machine load hits all alike.
            for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
                side()
        load = os.getloadavg()
    finally:
        bao.stop()
        if private_pg is not None:
            private_pg.destroy()
        shutil.rmtree(work, ignore_errors=True)  # the generated token files
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        "apply_first": med["apply_first"] / med["script_first"],
        "plan_in_sync": med["plan_in_sync"] / med["script_rerun"],
        "apply_rerun": med["apply_rerun"] / med["script_rerun"],
    }
    if "plan_fresh" in med:
        ratios["plan_fresh"] = med["plan_fresh"] / med["script_first"]
    if args.sequential:
        ratios["seq_apply_first"] = med["seq_apply_first"] / med["script_first"]
        ratios["seq_apply_rerun"] = med["seq_apply_rerun"] / med["script_rerun"]
    return {
        "apps": args.apps,
        "db_roles": args.db_roles,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "server_version": server_version(bao.binary),
        "postgres": "stack" if private_pg is None else "private",
        "wall_median_s": {k: round(v, 3) for k, v in med.items()},
        "ratios": {k: round(v, 4) for k, v in ratios.items()},
        "targets": TARGETS,
        "met": {k: ratios[k] <= t for k, t in TARGETS.items()},
        "api_calls": calls,
        "script_api_calls": script_api,
        "load_avg": [round(x, 2) for x in load],
    }


def _print(r: dict[str, Any]) -> None:
    print(
        f"vault-bootstrap at scale on {r['server_version']}: {r['apps']} apps, "
        f"{r['db_roles']} DB roles, {r['rounds']} round(s), concurrency {r['concurrency']}, "
        f"PostgreSQL: {r['postgres']}, load avg {r['load_avg']}"
    )
    wall, ratios, calls = r["wall_median_s"], r["ratios"], r["api_calls"]
    sc = r["script_api_calls"]
    print(f"{'':28} {'wall s':>8} {'x script':>9} {'target':>7}  api calls (reads/writes/total)")
    print(
        f"{'bao script, first run':28} {wall['script_first']:>8.2f} {'':>9} {'':>7}  "
        f"{sc['reads']}/{sc['writes']}/{sc['total']} ({sc['cli_processes']} CLI processes)"
    )
    print(f"{'bao script, re-run':28} {wall['script_rerun']:>8.2f} {'':>9} {'':>7}  same")
    rows = [
        ("plan_fresh", "vb plan (empty server)"),
        ("apply_first", "vb apply, first"),
        ("plan_in_sync", "vb plan (in sync)"),
        ("apply_rerun", "vb apply, re-run"),
        ("seq_apply_first", "  same, --concurrency 1"),
        ("seq_apply_rerun", "  re-run, --concurrency 1"),
    ]
    for key, label in rows:
        if key not in wall:
            continue
        target = r["targets"].get(key)
        tgt = f"<={target}" if target else ""
        c = calls[key]
        print(
            f"{label:28} {wall[key]:>8.2f} {ratios[key]:>9.3f} {tgt:>7}  "
            f"{c['reads']}/{c['writes']}/{c['total']} (max in flight {c['max_in_flight']}, "
            f"429s {c['rate_limited']})"
        )
    for key, ok in r["met"].items():
        print(f"target {key} <= {r['targets'][key]}x: {'met' if ok else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", type=int, default=300)
    ap.add_argument("--db-roles", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--sequential", action="store_true", help="also time --concurrency 1")
    ap.add_argument("--quick", action="store_true", help="CI: 3 apps, 1 DB role, 1 round (< 1 min)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    if args.quick:
        args.apps, args.db_roles, args.rounds, args.sequential = 3, 1, 1, False
    if not 1 <= args.apps <= 5000 or not 1 <= args.db_roles <= args.apps or args.rounds < 1:
        print("vault_bootstrap_scale: need 1 <= --db-roles <= --apps <= 5000, --rounds >= 1")
        return 1
    try:
        result = bench(args)
    except BenchFailed as exc:
        print(f"vault_bootstrap_scale: FAILED: {exc}")
        return 1
    _print(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    ratios_ok = all(v > 0 for v in result["ratios"].values())
    return 0 if ratios_ok else 1


if __name__ == "__main__":
    sys.exit(main())
