"""The thin executor: send the planned changes in dependency waves, and record what we did.

All decisions were made by the planner; this module only reveals `Sensitive` values at the
wire, maps failures to one-line errors that name the config field, and writes the state entry
(created objects, write-only versions) last. If a change fails, the state entry is still
written best-effort with what did succeed, so ownership survives a crash where possible.

Concurrency: `_waves.waves` splits the ordered plan into waves of mutually independent changes;
each wave runs on a thread pool of at most `concurrency` workers, and the next wave starts only
when the whole wave succeeded. After a failure no new change starts (the ones already on the
wire finish and are recorded), and the first failure in plan order is reported.
`concurrency=1` is the old strictly sequential behaviour.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ._errors import ApplyError
from ._gateway import VaultCallError, VaultGateway
from ._model import Change, Plan, StateRecord
from ._redact import Sensitive
from ._waves import waves

__all__ = ["ApplyResult", "apply_plan"]

log = logging.getLogger("vault_bootstrap.apply")


@dataclass
class ApplyResult:
    writes: int
    applied: int


def _reveal(value: Any) -> Any:
    if isinstance(value, Sensitive):
        return value.reveal()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


def apply_plan(
    gw: VaultGateway, plan: Plan, *, old_state: StateRecord, concurrency: int = 1
) -> ApplyResult:
    start = gw.writes
    done = StateRecord(created=set(old_state.created), versions=dict(old_state.versions))
    applied = 0
    try:
        for wave in waves(plan.changes):
            ok, error = _run_wave(gw, wave, concurrency)
            for change in ok:
                applied += 1
                if change.action == "create":
                    done.created.add(change.key)
                elif change.action == "delete":
                    done.created.discard(change.key)
                done.versions.update(change.versions)
            if error is not None:
                raise error
    except ApplyError:
        if done.to_data() != old_state.to_data():
            _write_state_best_effort(gw, plan.state_path, done)
        raise
    if plan.state_changed:
        try:
            gw.write(plan.state_path, {"data": plan.new_state.to_data()})
        except VaultCallError as exc:
            raise ApplyError(f"state: cannot record state at {plan.state_path}: {exc}") from None
        log.info("recorded state at %s", plan.state_path)
    return ApplyResult(writes=gw.writes - start, applied=applied)


def _run_wave(
    gw: VaultGateway, wave: list[Change], concurrency: int
) -> tuple[list[Change], ApplyError | None]:
    """Apply one wave; (the changes that succeeded, the first error in plan order or None)."""
    if concurrency <= 1 or len(wave) == 1:
        for i, change in enumerate(wave):
            try:
                _apply_one(gw, change)
            except ApplyError as exc:
                return wave[:i], exc
        return list(wave), None
    stop = threading.Event()

    def task(change: Change) -> ApplyError | bool:
        if stop.is_set():
            return False  # not started: an earlier change of this wave failed
        try:
            _apply_one(gw, change)
        except ApplyError as exc:
            stop.set()
            return exc
        return True

    with ThreadPoolExecutor(max_workers=min(concurrency, len(wave))) as pool:
        outcomes = list(pool.map(task, wave))
    ok = [c for c, r in zip(wave, outcomes, strict=True) if r is True]
    errors = [r for r in outcomes if isinstance(r, ApplyError)]
    if len(errors) > 1:
        log.warning("%d changes of one wave failed; reporting the first", len(errors))
    return ok, errors[0] if errors else None


def _write_state_best_effort(gw: VaultGateway, path: str, state: StateRecord) -> None:
    try:
        gw.write(path, {"data": state.to_data()})
    except VaultCallError as exc:
        log.warning("could not record partial state at %s: %s", path, exc)


def _apply_one(gw: VaultGateway, c: Change) -> None:
    target = c.write_path or c.path
    if c.action == "adopt":
        return
    log.info("%s %s (%s)", c.action, c.path, ", ".join(f.name for f in c.fields) or "-")
    try:
        if c.action == "delete":
            gw.delete(target)
        elif c.action == "rotate":
            # rotate-root is not idempotent: one attempt, never retried blindly.
            gw.write(target, {}, retry=False)
        elif c.kind in ("auth_mount", "secrets_mount") and c.action == "create":
            _enable_mount(gw, c)
        else:
            gw.write(target, _reveal(c.body))
            if c.kind == "kv" and c.action == "create":
                mount, _, sub = c.path.partition("/data/")
                gw.write(
                    f"{mount}/metadata/{sub}",
                    {"custom_metadata": {"managed-by": "vault-bootstrap"}},
                )
    except VaultCallError as exc:
        raise ApplyError(_explain(c, exc)) from None


def _enable_mount(gw: VaultGateway, c: Change) -> None:
    """Enable a mount; after a retried request, "already in use" with our type means done."""
    try:
        gw.write(c.path, _reveal(c.body))
    except VaultCallError as exc:
        if "already in use" not in str(exc):
            raise
        table = "sys/auth" if c.kind == "auth_mount" else "sys/mounts"
        name = c.path.split("/", 2)[2] + "/"
        info = (gw.read(table) or {}).get(name) or {}
        if info.get("type") != c.body.get("type"):
            raise
        log.info("%s already enabled (an earlier attempt succeeded)", c.path)


def _explain(c: Change, exc: VaultCallError) -> str:
    if c.kind == "db_connection":
        return (
            f"{c.source}: Vault could not configure database connection {c.path!r} "
            f"(it verifies by logging in to the database): {exc}"
        )
    if c.kind == "db_rotate_root":
        return f"{c.source}: rotate-root failed and was not retried: {exc}"
    return f"{c.source}: {c.action} {c.path} failed: {exc}"
