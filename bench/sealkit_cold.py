"""Cold start: seal one Secret with ``--cert``, sealkit vs the real kubeseal, side by side.

Each round runs every command once, as fresh processes (what a user or a CI step pays), in
alternating order. Reports median and minimum wall time and median CPU time (user+sys, less
sensitive to other load on the machine) and the ratios to kubeseal. The certificate is
RSA-4096, like a controller's. Commands:

- ``kubeseal``: the real Go binary;
- ``sealkit (editable)``: the venv's console script. The venv holds sealkit as an *editable*
  install, whose import hook (``__editable___sealkit_*_finder``) costs a fixed ~20 ms at every
  interpreter start; users installing the wheel do not pay it;
- ``sealkit (installed)``: the same code run by a plain venv that sees the packages through a
  path-only ``.pth`` (what a wheel install looks like to the interpreter);
- ``python -c pass``: the bare interpreter start, the floor of any Python CLI.

    .venv/bin/python bench/sealkit_cold.py [--rounds 40] [--json] [--quick]

``--quick`` (CI, ``bench/run.sh --quick``): 3 rounds, exit 1 unless every ratio is computed.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
  namespace: prod
type: Opaque
data:
  password: czNjcjN0LXA0c3N3MHJk
stringData:
  username: admin
  url: postgres://db.prod.svc:5432/app
"""


def _kubeseal() -> str:
    if os.environ.get("KUBESEAL"):
        return os.environ["KUBESEAL"]
    from devstack import binaries

    return binaries.kubeseal()


# An installed wheel has byte-compiled modules; PYTHONDONTWRITEBYTECODE (set in some dev
# shells) would make every start recompile sealkit from source, so let the warm-up write them.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {stderr.decode(errors='replace').strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _installed_python(tmp: str) -> str:
    """A plain venv that sees our packages through a path-only .pth (no editable finder)."""
    import site
    import venv

    target = Path(tmp, "venv")
    venv.EnvBuilder(with_pip=False).create(target)
    purelib = next(Path(p) for p in site.getsitepackages() if p.endswith("site-packages"))
    pth = next(target.glob("lib/python*/site-packages")) / "sealkit-bench.pth"
    pth.write_text(f"{ROOT}\n{purelib}\n")
    return str(target / "bin" / "python")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick", action="store_true", help="CI: 3 rounds; exit 1 unless every ratio computes"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3

    from cryptography.hazmat.primitives import serialization

    from sealkit.keys import generate_key_and_cert

    kubeseal = _kubeseal()
    sealkit = shutil.which("sealkit", path=str(Path(sys.executable).parent)) or "sealkit"
    with tempfile.TemporaryDirectory() as tmp:
        cert = Path(tmp, "cert.pem")
        _, certificate = generate_key_and_cert(4096)
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        secret = Path(tmp, "secret.yaml")
        secret.write_text(SECRET)
        installed = _installed_python(tmp)
        seal = ["--cert", str(cert), "-f", str(secret)]
        entry = "import sys; from sealkit.cli import main; sys.exit(main())"
        commands = {
            "kubeseal": [kubeseal, *seal],
            "sealkit (editable)": [sealkit, *seal],
            "sealkit (installed)": [installed, "-c", entry, *seal],
            "python -c pass": [installed, "-c", "pass"],
        }
        import compileall

        compileall.compile_dir(str(ROOT / "sealkit"), quiet=1)
        for cmd in commands.values():  # warm the page cache (and byte-compile) once
            _time(cmd)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(args.rounds):
            order = list(commands) if i % 2 == 0 else list(reversed(commands))
            for name in order:
                wall, cpu = _time(commands[name])
                walls[name].append(wall)
                cpus[name].append(cpu)

    stats = {
        name: {
            "wall_median_ms": statistics.median(walls[name]) * 1000,
            "wall_min_ms": min(walls[name]) * 1000,
            "cpu_median_ms": statistics.median(cpus[name]) * 1000,
        }
        for name in commands
    }
    base = stats["kubeseal"]
    for s in stats.values():
        s["ratio_wall_median"] = s["wall_median_ms"] / base["wall_median_ms"]
        s["ratio_wall_min"] = s["wall_min_ms"] / base["wall_min_ms"]
        s["ratio_cpu_median"] = s["cpu_median_ms"] / base["cpu_median_ms"]
    result = {
        "rounds": args.rounds,
        "load_average": os.getloadavg(),
        "stats": stats,
        "target_ratio": 1.5,
    }
    ratios = [v for s in stats.values() for k, v in s.items() if k.startswith("ratio_")]
    computed = all(math.isfinite(r) and r > 0 for r in ratios)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if computed else 1
    print(
        f"cold start, seal one Secret with --cert (RSA-4096), {args.rounds} rounds, "
        f"alternating; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'command':<22}{'wall med ms':>12}{'wall min ms':>12}{'cpu med ms':>11}"
        f"{'x kubeseal (wall med/min, cpu)':>34}"
    )
    for name, s in stats.items():
        ratios = (
            f"{s['ratio_wall_median']:.2f} / {s['ratio_wall_min']:.2f}, {s['ratio_cpu_median']:.2f}"
        )
        print(
            f"{name:<22}{s['wall_median_ms']:>12.1f}{s['wall_min_ms']:>12.1f}"
            f"{s['cpu_median_ms']:>11.1f}{ratios:>34}"
        )
    print("target: sealkit <= 1.5x kubeseal")
    if not computed:
        print("error: a ratio could not be computed", file=sys.stderr)
    return 0 if computed else 1


if __name__ == "__main__":
    raise SystemExit(main())
