"""Re-export of the sealkit tests' CLI runner (tests/sealkit/conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_sealkit_conftest", Path(__file__).parents[1] / "sealkit" / "conftest.py"
)
assert _spec and _spec.loader
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
run_sealkit = _mod.run_sealkit
