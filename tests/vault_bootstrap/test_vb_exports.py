"""The public surface: `__all__` is exactly the lazily exported names, and each resolves."""

from __future__ import annotations

import subprocess
import sys

import vault_bootstrap


def test_all_matches_exports() -> None:
    assert sorted(vault_bootstrap.__all__) == sorted(vault_bootstrap._EXPORTS)
    for name in vault_bootstrap.__all__:
        assert getattr(vault_bootstrap, name) is not None


def test_cli_import_stays_light() -> None:
    """`vault-bootstrap --help` must not pay for hvac/pydantic/kubernetes imports."""
    code = (
        "import sys, vault_bootstrap.cli; "
        "print(sorted(m for m in ('hvac', 'pydantic', 'kubernetes', 'tenacity', 'psycopg') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
