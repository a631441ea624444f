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


def test_layering() -> None:
    """vault_bootstrap never imports controller; the planner and config stay free of I/O libs."""
    import ast
    from pathlib import Path

    pkg = Path(vault_bootstrap.__file__).parent

    def imports(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        return names

    for path in pkg.glob("*.py"):
        assert "controller" not in imports(path), path
    for pure in ("_planner.py", "_model.py", "_render.py", "_config.py", "_desired.py"):
        assert not imports(pkg / pure) & {"hvac", "requests", "kubernetes", "psycopg"}, pure
