"""Shared helpers for the "beyond kubeseal" tests (seal-tree, scan, keygen, set).

A throwaway 2048-bit key pair (fast to make) written as the controller's key Secret plus its
certificate, the real kubeseal binary for interop (stack-marked tests only), and a check that
no known plaintext leaks into any output.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealkit.keygen import generate, write_files


@dataclass(frozen=True)
class KeyPair:
    key_secret: Path  # the controller's key Secret manifest (YAML)
    cert: Path  # PEM certificate
    fingerprint: str

    def private_keys(self) -> list:
        from sealkit.keys import load_private_keys

        return load_private_keys(self.key_secret.read_bytes())

    def public_key(self):
        from sealkit.certs import load_public_key

        return load_public_key(self.cert.read_bytes())


def make_keypair(directory: Path, bits: int = 2048) -> KeyPair:
    material = generate(bits=bits)
    key_secret, cert = directory / "key-secret.yaml", directory / "cert.pem"
    write_files(material, key_secret, cert)
    return KeyPair(key_secret, cert, material.fingerprint)


def kubeseal_binary() -> str:
    """The real Bitnami kubeseal (skip, or fail under CI, when it is not built)."""
    from devstack.binaries import kubeseal
    from tests.conftest import unavailable

    try:
        return kubeseal()
    except Exception as exc:  # devstack.MissingComponent
        unavailable(f"kubeseal binary not available: {exc}")
        raise  # unreachable: unavailable() skips or fails


def kubeseal_recovery_unseal(
    kubeseal: str, sealed_file: Path, key_secret: Path, home: Path | None = None
) -> dict:
    """Open a SealedSecret file with `kubeseal --recovery-unseal`; returns the Secret dict."""
    import json

    proc = subprocess.run(
        [
            kubeseal,
            "--recovery-unseal",
            "--recovery-private-key",
            str(key_secret),
            "-o",
            "json",
            "-f",
            str(sealed_file),
        ],
        capture_output=True,
        timeout=60,
        check=False,
        env=_hermetic_env(home or sealed_file.parent),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def _hermetic_env(home: Path) -> dict[str, str]:
    """No kubeconfig and a throwaway HOME: the offline kubeseal paths must not need a cluster."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "SEALED_SECRETS"))}
    env["HOME"] = str(home)
    return env


def kubeseal_seal(kubeseal: str, cert: Path, secret: dict, home: Path) -> dict:
    """Seal a Secret dict with the real `kubeseal --cert`; returns the SealedSecret dict."""
    import json

    proc = subprocess.run(
        [kubeseal, "--cert", str(cert), "-o", "json"],
        input=json.dumps(secret).encode(),
        capture_output=True,
        timeout=60,
        check=False,
        env=_hermetic_env(home),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def assert_no_leak(values: Iterable[str], *outputs: str | bytes) -> None:
    for out in outputs:
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        for value in values:
            assert value not in text, "a secret value leaked into the output"


needs_kubeseal = pytest.mark.stack


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def run_cli(args: list[str], *, stdin: bytes = b"") -> CliResult:
    """Run `sealkit ARGS` in-process (through `sealkit.cli.main`, so the real error handler)."""
    import io
    import sys

    from sealkit.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    wrappers = (
        io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8"),
        io.TextIOWrapper(err, encoding="utf-8"),
    )
    sys.stdin, sys.stdout, sys.stderr = wrappers
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        for wrapper in wrappers:
            wrapper.flush()
            wrapper.detach()  # keep the BytesIO open for reading
    return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


def assert_one_line_error(result: CliResult) -> None:
    """A failing command printed `error: ...` lines only, and no traceback."""
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert lines and all(line.startswith("error: ") for line in lines), result.err
