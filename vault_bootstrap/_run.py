"""The whole bootstrap as one library call: phases, plan, apply, verify.

`run()` is what the CLI calls and what tests and the benchmark can call in-process.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._config import Config
from ._desired import build_desired, state_location
from ._errors import PlanError
from ._executor import apply_plan
from ._gateway import HvacGateway
from ._kube import KubeAccess
from ._model import Plan
from ._observe import observe
from ._phases import (
    KeyStoreIO,
    connection_settings,
    init_and_unseal,
    login,
    make_gateway,
    wait_for_vault,
)
from ._planner import make_plan
from ._prune_guard import check_prune
from ._refs import Resolver

__all__ = ["RunResult", "run"]

log = logging.getLogger("vault_bootstrap")


@dataclass
class RunResult:
    plan: Plan
    writes: int = 0
    verify_report: list[str] = field(default_factory=list)
    # The gateway's CallStats.snapshot() at the end of plan/apply (before verify).
    api_calls: dict[str, Any] = field(default_factory=dict)


def run(
    config: Config,
    *,
    mode: Literal["plan", "apply"],
    env: Mapping[str, str] | None = None,
    prune: bool | None = None,
    prune_all: bool = False,
    wait: bool = True,
    wait_timeout: float | None = None,
    retry_timeout: float = 60,
    verify: bool = True,
    kube: KubeAccess | None = None,
    gateway: HvacGateway | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    concurrency: int | None = None,
) -> RunResult:
    """Run the phases; `on_plan` sees the plan before anything is written.

    `concurrency` (default: `connection.concurrency`, 8) bounds the Vault requests in flight.
    """
    env = os.environ if env is None else env
    kube = kube or KubeAccess()
    resolver = Resolver(env, kube_secret_reader=kube.read_secret_data)
    settings = connection_settings(config, resolver, env)
    gw = gateway or make_gateway(settings, retry_timeout=retry_timeout)
    timeout = settings.wait_timeout if wait_timeout is None else wait_timeout
    workers = config.connection.concurrency if concurrency is None else max(1, concurrency)
    started = time.monotonic()

    store = KeyStoreIO(config.init, resolver, kube) if config.init is not None else None
    if wait:
        health = wait_for_vault(gw, timeout=timeout, accept_uninitialised=store is not None)
        if store is not None and config.init is not None and not health.ready:
            if mode == "plan":
                raise PlanError("Vault is sealed or not initialised; run apply to init/unseal")
            init_and_unseal(gw, store, health, config.init)
            remaining = max(5.0, timeout - (time.monotonic() - started))
            wait_for_vault(gw, timeout=remaining)
    login(gw, config, resolver, env, store=store)

    desired = build_desired(config, resolver)
    state_mount, state_path = state_location(config)
    observed = observe(
        gw, desired, state_mount=state_mount, state_path=state_path, concurrency=workers
    )
    if state_mount not in observed.secrets_mounts and not any(
        d.kind == "secrets_mount"
        and d.path == f"sys/mounts/{state_mount}"
        and d.fields.get("type") == "kv"
        for d in desired
    ):
        raise PlanError(
            f"state.mount: KV v2 mount {state_mount!r} does not exist and is not declared under "
            "secrets; vault-bootstrap records what it created there"
        )
    do_prune = config.prune if prune is None else prune
    plan = make_plan(
        desired, observed, state_mount=state_mount, state_path=state_path, prune=do_prune
    )
    check_prune(plan, allow_all=prune_all)
    result = RunResult(plan=plan)
    if on_plan is not None:
        on_plan(plan)
    if mode == "plan":
        result.api_calls = _report_calls(gw)
        return result
    applied = apply_plan(gw, plan, old_state=observed.state, concurrency=workers)
    result.writes = applied.writes
    log.info("apply complete: %d writes", applied.writes)
    result.api_calls = _report_calls(gw)
    if verify and config.verify is not None:
        from ._verify import run_verify

        result.verify_report = run_verify(gw, config, kube, resolver)
    return result


def _report_calls(gw: Any) -> dict[str, Any]:
    """Log the gateway's call counts at info level (`-v`) and return them."""
    stats = getattr(gw, "stats", None)
    if stats is None:
        return {}
    snap: dict[str, Any] = stats.snapshot()
    log.info("%s", stats.describe(snap))
    return snap
