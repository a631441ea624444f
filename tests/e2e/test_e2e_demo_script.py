"""`make demo` itself: two runs and `make demo-down`, on a private stack (`--stack-dir`).

The demo's script is run as the user runs it (a subprocess printing its steps), against a stack
of its own, so the shared stack's `default` namespace and OpenBao are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaping may lag)."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def _tests_after_the_demo(kubectl: str, kubeconfig: str) -> None:
    """README order `make demo`, then `make test`: the test that dry-runs every example (the
    one that once hit a server-side apply conflict with the demo's Job) passes next to the
    demo's objects."""
    from tests.e2e.test_e2e_examples import dry_run_examples

    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "create", "namespace", "t-after-demo"],
                   check=True, capture_output=True, timeout=60)
    assert "Job" in dry_run_examples(kubectl, kubeconfig, "t-after-demo")


def test_make_demo_runs_twice_reusing_everything_then_demo_down_stops_it(stack, tmp_path,
                                                                         kubectl_path):
    from devstack.stack import parse_env
    from devstack.testing import require

    require(stack, "kube", "vault", "postgres", "kubectl")
    stack_dir = tmp_path / "stack"
    try:
        first = _demo("up", "--stack-dir", str(stack_dir))
        out = first.stdout
        assert first.returncode == 0, out + first.stderr
        assert "summary: all 8 steps passed" in out
        for n in range(1, 9):
            assert f"[{n}/8]" in out
        assert "(started)" in out and "Apply complete:" in out
        assert "matches the sealed input" in out and "refused (403)" in out

        second = _demo("up", "--stack-dir", str(stack_dir))
        assert second.returncode == 0, second.stdout + second.stderr
        assert "(re-used)" in second.stdout
        assert "Apply complete: 0 writes." in second.stdout  # the hook is idempotent

        env = parse_env((stack_dir / "env").read_text())
        texts = [first.stdout, first.stderr, second.stdout, second.stderr,
                 (stack_dir / "demo" / "demo.log").read_text()]
        for secret in (env["VAULT_TOKEN"], env["PGPASSWORD"]):
            assert not any(secret in t for t in texts), "a stack secret was printed or logged"
        pid = json.loads((stack_dir / "demo" / "controller.json").read_text())["controller"]["pid"]
        _tests_after_the_demo(kubectl_path, env["KUBECONFIG"])
    finally:
        down = _demo("down", "--stack-dir", str(stack_dir), timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopping sealkit-controller" in down.stdout
    assert not _running(pid), "the demo's controller survived make demo-down"
    assert not (stack_dir / "state.json").exists()
