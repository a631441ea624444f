"""Bench: vault-bootstrap vs the equivalent shell script of `bao`/`vault` CLI calls, same server.

Run per server flavour, side by side: OpenBao (the script calls `bao`) and HashiCorp Vault (the
script calls `vault`, the same binary as the server). For each round, on a private dev server of
that flavour (restarted empty before each first run) and a private PostgreSQL (both started here
via devstack, so the shared stack is never touched):

1. first run of ``bench/vault_chapter.sh`` (8 CLI calls), then its re-run;
2. first ``vault-bootstrap apply -f examples/vault-bootstrap/chapter.yaml``, then its re-run
   (which makes zero writes);
3. the start-up floor: a Python process that only imports click, yaml, pydantic and hvac.

Both sides are fresh processes, as a Job runs them. Reported: medians and the ratios
vault-bootstrap / script (targets: first apply <= 0.5x, re-run <= 0.3x), per flavour, and the
1-minute load average (`uptime`) at the end of each flavour's rounds. Usage::

    .venv/bin/python bench/vault_bootstrap_bench.py [--rounds 5] [--flavor both] [--json out]

``--quick`` (CI, ``bench/run.sh --quick``): 1 round; exit 1 unless every ratio is computed.

A flavour whose binary is missing is reported as such and skipped (`--flavor` names it
explicitly to make that an error).
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _vault_env import cli_env, private_postgres, server_version, write_ca  # noqa: E402

CHAPTER = ROOT / "examples" / "vault-bootstrap" / "chapter.yaml"
SCRIPT = ROOT / "bench" / "vault_chapter.sh"
CLI = [str(ROOT / ".venv" / "bin" / "vault-bootstrap")]


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds incl. reaped children) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(ROOT)
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed: {stderr[-500:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _installed_python(tmp: Path) -> str:
    """A plain venv seeing our packages through a path-only .pth: what a wheel install looks
    like to the interpreter (the dev venv's editable-install import hook costs every start)."""
    import site
    import venv

    target = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    purelib = next(Path(p) for p in site.getsitepackages() if p.endswith("site-packages"))
    pth = next(target.glob("lib/python*/site-packages")) / "vb-bench.pth"
    pth.write_text(f"{ROOT}\n{purelib}\n")
    return str(target / "bin" / "python")


LABELS = {
    "script1": "{cli} script, first run",
    "script2": "{cli} script, re-run",
    "vb1": "vault-bootstrap apply, first",
    "vb2": "vault-bootstrap apply, re-run",
    "wheel1": "  same, wheel-like install, first",
    "wheel2": "  same, wheel-like install, re-run",
    "floor": "import floor (click/yaml/pyd/hvac)",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--flavor", choices=("openbao", "vault", "both"), default="both")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument(
        "--quick", action="store_true", help="CI: 1 round; exit 1 unless every ratio computes"
    )
    args = ap.parse_args()
    if args.quick:
        args.rounds = 1

    from devstack import binaries
    from devstack.vault_server import dev_server

    work = Path(tempfile.mkdtemp(prefix="vb-bench-"))
    ca = work / "ca.crt"
    write_ca(ca)
    flavors = ("openbao", "vault") if args.flavor == "both" else (args.flavor,)
    servers = {}
    for flavor in flavors:
        try:
            servers[flavor] = dev_server(flavor, work / flavor)
        except binaries.MissingComponent as err:
            if args.flavor != "both":
                raise SystemExit(f"vault-bootstrap bench: {err}") from None
            print(f"vault-bootstrap bench: skipping {flavor}: {err}")
    pg_env, pg = private_postgres(work, "vb-bench-pg")
    results = {}
    try:
        for flavor, server in servers.items():
            results[flavor] = _bench_flavor(flavor, server, pg_env, ca, work, args.rounds)
    finally:
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)  # data dirs of the private servers
    for flavor, result in results.items():
        _print(flavor, result, args.rounds)
    print("targets: first apply <= 0.5x the script, re-run <= 0.3x")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    ratios = [v for r in results.values() for v in r["ratios"].values()]
    if not ratios or not all(math.isfinite(v) and v > 0 for v in ratios):
        print("error: a ratio could not be computed (no server flavour ran?)", file=sys.stderr)
        return 1
    return 0


def _bench_flavor(
    flavor: str, bao: Any, pg_env: dict[str, str], ca: Path, work: Path, rounds: int
) -> dict:
    """Medians of `rounds` rounds against `bao`, a dev server of `flavor` (stopped at the end)."""
    bao.start()
    try:
        env = cli_env(bao, ca, pg_env)
        env["NAME_SERVICE_TOKEN"] = "bench-name-service-token"
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        script = ["bash", str(SCRIPT)]
        apply = [*CLI, "apply", "-f", str(CHAPTER)]
        wheel_py = _installed_python(work)
        entry = "import sys; from vault_bootstrap.cli import main; sys.exit(main())"
        apply_wheel = [wheel_py, "-c", entry, "apply", "-f", str(CHAPTER)]
        floor = [wheel_py, "-c", "import click, yaml, pydantic.main, hvac"]
        sides = [("script", script), ("vb", apply), ("wheel", apply_wheel)]
        times: dict[str, list[tuple[float, float]]] = {}
        _timed(["bash", "-c", f"{bao.binary} version"], env)  # warm caches
        _timed(floor, env)
        for i in range(rounds):
            # Rotate which side goes first, so drifting machine load hits all alike.
            order = sides[i % len(sides) :] + sides[: i % len(sides)]
            for side, argv in order:
                bao.stop()
                bao.start()
                times.setdefault(f"{side}1", []).append(_timed(argv, env))
                times.setdefault(f"{side}2", []).append(_timed(argv, env))
            times.setdefault("floor", []).append(_timed(floor, env))
    finally:
        bao.stop()
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    return {
        "flavor": flavor,
        "server_version": server_version(bao.binary),
        "rounds": rounds,
        "wall_median_s": {k: round(v, 3) for k, v in wall.items()},
        "cpu_median_s": {k: round(v, 3) for k, v in cpu.items()},
        "ratios": {
            f"{side}_{run}_{kind}": round(m[f"{side}{n}"] / m[f"script{n}"], 3)
            for side in ("vb", "wheel")
            for n, run in ((1, "first"), (2, "rerun"))
            for kind, m in (("wall", wall), ("cpu", cpu))
        },
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _print(flavor: str, result: dict, rounds: int) -> None:
    wall, cpu = result["wall_median_s"], result["cpu_median_s"]
    cli = "bao" if flavor == "openbao" else "vault"
    print(
        f"vault-bootstrap bench on {result['server_version']}: {rounds} rounds, medians, "
        f"load avg {result['load_avg_1m']}"
    )
    print(f"{'':34} {'wall s':>8} {'cpu s':>8} {'x script wall':>14} {'x script cpu':>13}")
    for key, template in LABELS.items():
        label = template.format(cli=cli)
        ref = "script1" if key.endswith("1") else "script2"
        ratio = (
            ""
            if key.startswith("script")
            else (f"{wall[key] / wall[ref]:>14.2f} {cpu[key] / cpu[ref]:>13.2f}")
        )
        print(f"{label:34} {wall[key]:>8.3f} {cpu[key]:>8.3f} {ratio}")


if __name__ == "__main__":
    raise SystemExit(main())
