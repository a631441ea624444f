"""Declarative, idempotent Vault/OpenBao configuration: config -> plan -> apply.

Layers (pure core, thin edges): `_config` (pydantic model) -> `_desired` (resolve references,
normalise) + `_observe` (read and normalise via `VaultGateway`) -> `_planner` (pure diff) ->
`_executor` (ordered writes) ; `_phases` (wait, init/unseal, login), `_verify` (smoke test).
"""

from __future__ import annotations

from ._config import Config, load_config, parse_config
from ._errors import (
    ApplyError,
    BootstrapError,
    ConfigError,
    InitError,
    LoginError,
    NotReadyError,
    PlanError,
    ReferenceError_,
    VerifyError,
)
from ._gateway import Health, HvacGateway, VaultCallError, VaultGateway
from ._model import Change, FieldChange, Plan
from ._planner import make_plan
from ._redact import RedactingFilter, Sensitive, redact
from ._render import plan_to_json, render_plan
from ._run import RunResult, run

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
    "ReferenceError_",
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
