"""The `vault-bootstrap` console script: first check that the `vault` extra is installed.

`pip install sealkit` installs this command too (a package cannot install a console script only
with an extra), but its dependencies (hvac, pydantic, tenacity, psycopg) come with
`sealkit[vault]`. Without them, say so in one line, before anything imports them, instead of
failing later with `unexpected ModuleNotFoundError`. Exit code 1, like every other error here.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["REQUIRED", "main", "missing_modules"]

# Import names of the `vault` extra's packages (pyproject.toml).
REQUIRED = ("hvac", "pydantic", "tenacity", "psycopg")


def missing_modules() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def main() -> None:
    missing = missing_modules()
    if missing:
        sys.stderr.write(
            f"error: vault-bootstrap needs the 'vault' extra ({', '.join(missing)} not "
            "installed): pip install 'sealkit[vault]'\n"
        )
        sys.exit(1)
    from .cli import main as cli_main

    cli_main()
