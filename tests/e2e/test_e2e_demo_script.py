"""`make demo` itself: two runs and `make demo-down`, on a private stack (`--stack-dir`).

The demo's script is run as the user runs it (a subprocess printing its steps), against a stack
of its own (with its own node, Argo CD and Git server), so the shared stack is never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]


def _demo(
    *args: str, flavor: str = "openbao", timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`make demo` as run with `SEALKIT_VAULT=<flavor>`."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "SEALKIT_VAULT": flavor},
    )


def _stack_processes(stack_dir: Path) -> list[int]:
    """Pids whose environment names this stack directory (every stack process carries it)."""
    mark = f"SEALKIT_STACK_DIR={stack_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _tests_after_the_demo(kubectl: str, kubeconfig: str) -> None:
    """README order `make demo`, then `make test`: the test that dry-runs every example (the
    one that once hit a server-side apply conflict with the demo's Job) passes next to the
    demo's objects."""
    from tests.e2e.test_e2e_examples import dry_run_examples

    subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "create", "namespace", "t-after-demo"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert "Job" in dry_run_examples(kubectl, kubeconfig, "t-after-demo")


def _vault_pod_image(kubectl: str, kubeconfig: str) -> str:
    return subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "get", "pods", "-l", "app.kubernetes.io/name=vault",
         "-o", "jsonpath={.items[*].spec.containers[0].image}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize("flavor", ["openbao", "vault"])
def test_make_demo_runs_twice_with_argocd_then_demo_down_stops_it(
    stack, tmp_path, kubectl_path, flavor
):
    """`make demo` and `make demo SEALKIT_VAULT=vault`: the same flow on OpenBao and on
    HashiCorp Vault (the example's Vault Deployment switched to Vault's image)."""
    from devstack import images
    from devstack.stack import parse_env
    from devstack.testing import require, require_flavor

    require_flavor(flavor)
    require(stack, "kube", "kubectl")
    stack_dir = tmp_path / "stack"
    try:
        first = _demo("up", "--stack-dir", str(stack_dir), flavor=flavor)
        out = first.stdout
        assert first.returncode == 0, out + first.stderr
        assert "summary: all 7 steps passed" in out
        for n in range(1, 8):
            assert f"[{n}/7]" in out
        # Argo CD's own verdict, and its tree, are what the demo prints.
        assert "welcome-message-cluster: Synced/Healthy" in out
        assert "welcome-message-apps: Synced/Healthy" in out
        assert "SealedSecret" in out and "vault-bootstrap" in out
        assert "Apply complete:" in out and "connected to PostgreSQL as a dynamic user" in out

        second = _demo("up", "--stack-dir", str(stack_dir), flavor=flavor)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Apply complete: 0 writes." in second.stdout  # the hook is idempotent

        env = parse_env((stack_dir / "env").read_text())
        served = _vault_pod_image(kubectl_path, env["KUBECONFIG"])
        openbao = images.DEMO_IMAGES["quay.io/openbao/openbao"][0]
        assert served.startswith(images.VAULT_DEMO_IMAGE if flavor == "vault" else openbao), served
        assert env["SEALKIT_VAULT_DEFAULT"] == flavor
        texts = [
            first.stdout,
            first.stderr,
            second.stdout,
            second.stderr,
            (stack_dir / "demo" / "demo.log").read_text(),
        ]
        for secret in (env["VAULT_TOKEN"], env["PGPASSWORD"]):
            assert not any(secret in t for t in texts), "a stack secret was printed or logged"
        if flavor == "openbao":  # the README's order once; the flavour changes nothing there
            _tests_after_the_demo(kubectl_path, env["KUBECONFIG"])
    finally:
        down = _demo("down", "--stack-dir", str(stack_dir), flavor=flavor, timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    assert _stack_processes(stack_dir) == [], "a demo process survived make demo-down"
    assert not (stack_dir / "state.json").exists()
