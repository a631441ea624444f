"""Fixtures for the sealkit tests: the committed RSA-2048 test key and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors"
SEALKIT = str(Path(sys.executable).parent / "sealkit")


@pytest.fixture(scope="session")
def key_path() -> str:
    return str(VECTORS / "test-key.pem")


@pytest.fixture(scope="session")
def cert_path() -> str:
    return str(VECTORS / "test-cert.pem")


@pytest.fixture(scope="session")
def private_key(key_path: str) -> Any:
    from sealkit.keys import load_private_keys

    return load_private_keys(Path(key_path).read_bytes())[0]


@pytest.fixture(scope="session")
def public_key(private_key: Any) -> Any:
    return private_key.public_key()


@pytest.fixture(scope="session")
def other_private_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def run_sealkit(
    *args: str,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `sealkit` console script; text stdout/stderr."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SEALED_SECRETS_")}
    full_env.pop("SEALKIT_CONTROLLER_URL", None)
    full_env.update(env or {})
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run(
        [SEALKIT, *args],
        input=input if input is not None else b"",
        capture_output=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """Exit ``code``, exactly one ``error: ...`` line on stderr, no traceback, no stdout."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
