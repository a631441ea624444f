"""Helpers for vault_bootstrap's integration tests (fixtures live in conftest.py).

Every test gets its OWN OpenBao (devstack's private dev server, or a file-storage server for
init/unseal and restart faults), never the stack's shared one: the E2E demo applies the same
chapter config there, and fault tests restart servers. PostgreSQL and the kube-apiserver are the
stack's; tests that rotate or break PostgreSQL start a private PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.testing import require  # noqa: F401 - re-exported for tests
from devstack.testing import require_flavor as need_flavor  # noqa: F401 - re-exported

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "examples" / "vault-bootstrap" / "chapter.yaml"
NAME_SERVICE_TOKEN = "nst-0123-very-secret-name-service-token"


def clean_env() -> dict[str, str]:
    """The test process env without any Vault/OpenBao/PG/kube client settings."""
    drop = ("VAULT_", "BAO_", "PG", "KUBE")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "vault_bootstrap.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=str(ROOT),
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class FileBao:
    """A production-like server: persistent storage (raft for OpenBao, which has no `file`
    backend in 2.x; `file` for Vault), starts uninitialised, comes back sealed after a restart."""

    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""  # no root token until someone initialises it
    flavor: str = "openbao"
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "bao.log"
        from devstack import ports
        from devstack.vault_server import prod_config

        cluster_port = ports.free_port()
        (self.workdir / "data").mkdir(exist_ok=True)
        (self.workdir / "bao.hcl").write_text(
            prod_config(self.flavor, self.workdir / "data", self.port, cluster_port)
        )

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from devstack import binaries

        env = clean_env()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binaries.bao() if self.flavor == "openbao" else binaries.vault(),
                    "server",
                    f"-config={self.workdir / 'bao.hcl'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        import requests

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.addr}/v1/sys/health", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"production-like {self.flavor} did not start; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def chapter_env(
    stack: Any,
    bao: Any,
    *,
    ca_file: str,
    token: str | None = None,
    use_bao_prefix: bool = False,
    **extra: str,
) -> dict[str, str]:
    """The `.devstack/env` variables, pointed at a private OpenBao, plus NAME_SERVICE_TOKEN."""
    env = clean_env()
    env.update({k: v for k, v in stack.env.items() if v and not k.startswith("VAULT_")})
    prefix = "BAO_" if use_bao_prefix else "VAULT_"
    env[prefix + "ADDR"] = bao.addr
    token = token if token is not None else bao.token
    if token:
        env[prefix + "TOKEN"] = token
    env.setdefault("KUBE_APISERVER_URL", "https://127.0.0.1:1")
    if not env.get("KUBE_CA_FILE"):
        env["KUBE_CA_FILE"] = ca_file
    env["NAME_SERVICE_TOKEN"] = NAME_SERVICE_TOKEN
    env.update(extra)
    return env


def hvac_client(addr: str, token: str) -> Any:
    import hvac

    return hvac.Client(url=addr, token=token)
