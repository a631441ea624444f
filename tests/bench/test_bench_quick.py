"""`bench/run.sh --quick` under `make test`: every benchmark runs and computes its ratios.

The figures of a quick run mean nothing (tiny sizes, one round, a loaded CI machine); what is
tested is that no bench has rotted: each script starts, drives the real peer (kubeseal, bao, the
stack's apiserver and node), and exits 0 only when every ratio it reports is a finite number.
Benches that need the stack use the session's (`SEALKIT_BENCH_STACK_DIR`).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, require

# The scripts run.sh calls; a new bench line must come with its --quick (and a row here).
SCRIPTS = [
    "vault_bootstrap_bench.py",
    "vault_bootstrap_scale.py",
    "sealkit_tree.py",
    "sealkit_cold.py",
    "controller_bench.py",
    "controller_startup.py",
    "controller_vs_upstream.py",
    "sealkit_cluster.py",
    "keyops_bench.py",
    "node_bench.py",
]


def test_run_sh_calls_every_listed_script() -> None:
    text = (ROOT / "bench" / "run.sh").read_text()
    called = re.findall(r"^bench (\S+\.py)", text, flags=re.MULTILINE)
    assert set(called) >= set(SCRIPTS)
    for script in set(called):
        assert "--quick" in (ROOT / "bench" / script).read_text(), f"{script} lacks --quick"


@pytest.mark.stack
@pytest.mark.timeout(1200)  # ~4 min on a quiet machine; far more on the loaded shared one
def test_every_bench_runs_quick(stack: Any) -> None:
    require(stack, "kube", "node", "kubectl", "kubeseal")
    env = {**os.environ, "SEALKIT_BENCH_STACK_DIR": str(Path(stack.dir).resolve())}
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "run.sh"), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "bench/run.sh: all benchmarks ran" in proc.stdout
    for script in SCRIPTS:
        assert re.search(rf"^== {re.escape(script)}: \d+ s$", proc.stdout, re.MULTILINE), script
    assert "FAILED" not in out
    # the seal-tree bench printed its ratios, computed
    assert re.search(r"seal-tree / floor:\s+[\d.]+x wall", proc.stdout)
    assert re.search(r"RSS growth 110 -> 220: seal [\d.]+x", proc.stdout)
