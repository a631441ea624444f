"""Declarative, idempotent Vault/OpenBao configuration: config -> plan -> apply.

Layers (pure core, thin edges): `_config` (pydantic model) -> `_desired` (resolve references,
normalise) + `_observe` (read and normalise via `VaultGateway`) -> `_planner` (pure diff) ->
`_executor` (ordered writes) ; `_phases` (wait, init/unseal, login), `_verify` (smoke test).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Lazy re-exports (PEP 562): `vault-bootstrap` start-up time is paid by every Job run, so the
# CLI imports only what a command needs; `from vault_bootstrap import X` works as usual.
_EXPORTS = {
    "Config": "_config",
    "load_config": "_config",
    "parse_config": "_config",
    "ApplyError": "_errors",
    "BootstrapError": "_errors",
    "ConfigError": "_errors",
    "InitError": "_errors",
    "LoginError": "_errors",
    "NotReadyError": "_errors",
    "PlanError": "_errors",
    "ResolveError": "_errors",
    "VerifyError": "_errors",
    "Health": "_gateway",
    "HvacGateway": "_gateway",
    "VaultCallError": "_gateway",
    "VaultGateway": "_gateway",
    "Change": "_model",
    "FieldChange": "_model",
    "Plan": "_model",
    "make_plan": "_planner",
    "RedactingFilter": "_redact",
    "Sensitive": "_redact",
    "redact": "_redact",
    "plan_to_json": "_render",
    "render_plan": "_render",
    "RunResult": "_run",
    "run": "_run",
}

if TYPE_CHECKING:
    from ._config import Config, load_config, parse_config
    from ._errors import (
        ApplyError,
        BootstrapError,
        ConfigError,
        InitError,
        LoginError,
        NotReadyError,
        PlanError,
        ResolveError,
        VerifyError,
    )
    from ._gateway import Health, HvacGateway, VaultCallError, VaultGateway
    from ._model import Change, FieldChange, Plan
    from ._planner import make_plan
    from ._redact import RedactingFilter, Sensitive, redact
    from ._render import plan_to_json, render_plan
    from ._run import RunResult, run


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vault_bootstrap' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vault_bootstrap.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ApplyError",
    "BootstrapError",
    "Change",
    "Config",
    "ConfigError",
    "FieldChange",
    "Health",
    "HvacGateway",
    "InitError",
    "LoginError",
    "NotReadyError",
    "Plan",
    "PlanError",
    "RedactingFilter",
    "ResolveError",
    "RunResult",
    "Sensitive",
    "VaultCallError",
    "VaultGateway",
    "VerifyError",
    "load_config",
    "make_plan",
    "parse_config",
    "plan_to_json",
    "redact",
    "render_plan",
    "run",
]
