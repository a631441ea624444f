"""Skip-or-fail helpers for tests that need a stack part (imported by tests/conftest.py).

On a developer machine without Go the stack tests skip with the reason; under
CI (`CI=true`, or `REQUIRE_TESTPLANE=1`) a missing part fails instead.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import pytest

from .binaries import MissingComponent

if TYPE_CHECKING:
    from .stack import Stack


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("REQUIRE_TESTPLANE") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail under CI."""
    if in_ci():
        pytest.fail(f"stack component missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require(stack: Stack, *parts: str) -> None:
    """Skip/fail unless the stack has all `parts` (kube, vault, postgres, kubeseal, kubectl)."""
    try:
        stack.require(*parts)
    except MissingComponent as err:
        unavailable(str(err))


def require_flavor(flavor: str) -> str:
    """Skip a Vault flavour (`openbao`/`vault`) deselected by SEALKIT_VAULT (a skip that says
    so, also under CI); skip, or fail under CI, a selected one whose binary is missing."""
    from . import binaries, vault_server

    chosen = vault_server.selection()
    if flavor not in chosen:
        pytest.skip(f"{flavor}: not selected ({vault_server.SELECT_ENV}={','.join(chosen)})")
    try:
        (binaries.bao if flavor == "openbao" else binaries.vault)()
    except MissingComponent as err:
        unavailable(str(err))
    return flavor
