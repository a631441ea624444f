"""The thin executor: read caches, call the pure planner, apply its `Plan` through the gateway.

`Reconciler.reconcile("ns/name")` is what a worker thread runs for one work-queue key. It
returns `Outcome.DONE` (forget the key) or `Outcome.RETRY` (re-add it with backoff). All rules
are in `controller.reconcile`; this module only sequences the I/O:

1. the SealedSecret from the informer cache (gone -> drop its metric series and key hint;
   `--old-gc-behavior` deletes the Secret explicitly instead of leaving it to the GC);
2. the existing Secret (the Secret informer's cache when there is one, else a GET);
3. the plan; create/replace the Secret (a stale cache shows up as 409, answered by one fresh
   GET and a re-plan);
4. events, then the `/status` merge patch (its failure is non-fatal, metric reason `status`),
   then metrics (requests, errors by reason, condition, per-key usage).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from controller.api_errors import safe_write_error
from controller.keyring import KeyRing
from controller.kube_gateway import ApiError, KubeGateway
from controller.reconcile import (
    REASON_UPDATE_FAILED,
    NeedFullSecret,
    Plan,
    ReconcileError,
    failure_plan,
    is_slim,
    is_slim_sealed,
    plan_reconcile,
)
from controller.write_guard import MAX_SECRET_DATA_BYTES, WritePolicy, check_secret_write
from sealkit.templates import render_budget

__all__ = ["Outcome", "ReconcileOptions", "Reconciler", "split_key"]

_LOG = logging.getLogger(__name__)
_WRITTEN_STATUS_MAX = 1024


class Outcome(enum.Enum):
    DONE = "done"
    RETRY = "retry"  # counts toward --max-unseal-retries
    TRANSIENT = "transient"  # the apiserver was unreachable/overloaded: retry, no retry budget


def _transient(exc: ApiError) -> bool:
    """No answer, 5xx or 429: the apiserver's trouble, not the object's."""
    return exc.status == 0 or exc.status >= 500 or exc.status == 429


@dataclass(frozen=True)
class ReconcileOptions:
    update_status: bool = True
    accept_v1_data: bool = True
    old_gc_behavior: bool = False
    # Post events from a small background pool: a worker goes back to RSA work one round trip
    # sooner. Off in pure tests, which read events right after reconcile().
    async_events: bool = False
    # Key Secrets are the key manager's alone; rendering is bounded (controller.write_guard).
    write_policy: WritePolicy = WritePolicy()
    render_max_bytes: int = MAX_SECRET_DATA_BYTES
    render_seconds: float = 5.0


_IMMUTABLE = (
    "Error updating {key}: the target Secret is immutable. Once a Secret is marked as "
    "immutable, it is not possible to revert this change nor to mutate the contents of the "
    "data field. You can only delete and recreate the Secret."
)


def _immutable(exc: ApiError) -> bool:
    """The apiserver refused to change an immutable Secret (upstream's `isImmutableError`)."""
    return exc.status == 422 and "field is immutable when `immutable` is set" in exc.message


def split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.partition("/")
    return ns, name


class Reconciler:
    """Applies plans for one controller; safe to call from several worker threads."""

    def __init__(
        self,
        gateway: KubeGateway,
        keyring: KeyRing,
        *,
        sealed_lookup: Callable[[str], Mapping[str, Any] | None],
        secret_lookup: Callable[[str, str], Mapping[str, Any] | None] | None = None,
        metrics: Any = None,
        options: ReconcileOptions | None = None,
    ) -> None:
        self.gw = gateway
        self.keys = keyring
        self.sealed_lookup = sealed_lookup
        self.secret_lookup = secret_lookup or gateway.get_secret
        self.metrics = metrics
        self.opts = options or ReconcileOptions()
        self._lock = threading.Lock()
        # key -> status we last wrote, so a lagging cache does not make us write it again
        # Bounded: it only bridges the short lag until our own status write comes back
        # through the informer; 10k entries of full status dicts would be ~10 MB for nothing.
        self._written_status: OrderedDict[str, tuple[Any, dict[str, Any]]] = OrderedDict()
        self.failed_unseal: set[str] = set()  # re-enqueued when a key arrives
        self.counters = {"create": 0, "update": 0, "status": 0, "events": 0}
        self._event_pool = (
            ThreadPoolExecutor(2, thread_name_prefix="events") if self.opts.async_events else None
        )

    # -- entry point ------------------------------------------------------------------------
    def reconcile(self, key: str) -> Outcome:
        ns, name = split_key(key)
        sealed = self.sealed_lookup(key)
        if self.metrics is not None:
            self.metrics.count_unseal_request()
        if sealed is not None and is_slim_sealed(sealed):
            try:  # the cache keeps only a digest of settled objects: read the real one
                sealed = self.gw.get_sealed(ns, name)
            except ApiError as exc:
                _LOG.warning("cannot read SealedSecret %s: %s", key, exc.message)
                return Outcome.TRANSIENT if _transient(exc) else Outcome.RETRY
        if sealed is None:
            self._forget(key, ns, name)
            return Outcome.DONE
        sealed = self._with_last_status(key, sealed)
        try:
            existing = self.secret_lookup(ns, name)
        except ApiError as exc:
            return self._finish(
                key,
                sealed,
                failure_plan(
                    sealed,
                    ReconcileError(
                        f"cannot read Secret: {exc.message}",
                        event_reason=REASON_UPDATE_FAILED,
                        metric_reason="fetch",
                    ),
                    update_status=self.opts.update_status,
                ),
                transient=_transient(exc),
            )
        plan = self._plan(key, sealed, existing)
        transient = False
        if plan.secret_action != "none":
            plan, transient = self._apply(key, sealed, plan)
        return self._finish(key, sealed, plan, transient=transient)

    # -- steps ------------------------------------------------------------------------------
    def _plan(
        self, key: str, sealed: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> Plan:
        def plan(existing: Mapping[str, Any] | None) -> Plan:
            with render_budget(self.opts.render_max_bytes, self.opts.render_seconds):
                return plan_reconcile(
                    sealed,
                    existing,
                    self.keys.entries(),
                    hint=self.keys.first_try(key),
                    accept_v1_data=self.opts.accept_v1_data,
                    update_status=self.opts.update_status,
                )

        try:
            result = plan(existing)
        except NeedFullSecret:
            result = plan(self.gw.get_secret(*split_key(key)))
        if result.secret_action == "update" and is_slim(existing):
            # The cache holds digests, not values: plan the write from the real Secret.
            result = plan(self.gw.get_secret(*split_key(key)))
        return result

    def _write(self, ns: str, plan: Plan) -> None:
        assert plan.secret is not None
        check_secret_write(plan.secret, self.opts.write_policy)
        if plan.secret_action == "create":
            self.gw.create_secret(ns, plan.secret)
        else:
            self.gw.replace_secret(ns, plan.secret["metadata"]["name"], plan.secret)
        with self._lock:
            self.counters[plan.secret_action] += 1

    def _apply(self, key: str, sealed: Mapping[str, Any], plan: Plan) -> tuple[Plan, bool]:
        ns, name = split_key(key)
        try:
            try:
                self._write(ns, plan)
            except ApiError as exc:
                if exc.status != 409 and not (exc.status == 404 and plan.secret_action == "update"):
                    raise
                # Our cache was stale: read the truth once, re-plan, write once more.
                fresh = self.gw.get_secret(ns, name)
                plan = self._plan(key, sealed, fresh)
                if plan.secret_action != "none":
                    self._write(ns, plan)
            return plan, False
        except ReconcileError as exc:  # refused before writing (controller.write_guard)
            return failure_plan(sealed, exc, update_status=self.opts.update_status), False
        except ApiError as exc:
            # 400/413/422 (invalid, too large, immutable): retrying cannot help. The message
            # is reduced to status, reason and field paths: the apiserver's text echoes values.
            retry = exc.status not in (400, 413, 422)
            if _immutable(exc):  # upstream's wording (its integration suite checks it)
                message = _IMMUTABLE.format(key=key)
            else:
                message = safe_write_error(exc)
            return failure_plan(
                sealed,
                ReconcileError(
                    message,
                    event_reason=REASON_UPDATE_FAILED,
                    metric_reason="update",
                    retry=retry,
                ),
                update_status=self.opts.update_status,
            ), _transient(exc)

    def _finish(
        self, key: str, sealed: Mapping[str, Any], plan: Plan, *, transient: bool = False
    ) -> Outcome:
        ns, name = split_key(key)
        meta = sealed.get("metadata") or {}
        if plan.synced or plan.error_reason == "update":
            self.keys.record_usage(key, plan.opened_by)
        elif plan.error_reason == "unseal":
            self.keys.record_usage(key, None)
        with self._lock:
            if plan.error_reason == "unseal":
                self.failed_unseal.add(key)
            else:
                self.failed_unseal.discard(key)
        for ev in plan.events:
            if self._event_pool is not None:
                self._event_pool.submit(self._emit, key, sealed, ev)
            else:
                self._emit(key, sealed, ev)
        if plan.status_patch is not None:
            try:
                self.gw.patch_sealed_status(ns, name, plan.status_patch)
                with self._lock:
                    self.counters["status"] += 1
                    self._written_status[key] = (
                        meta.get("generation"),
                        plan.status_patch["status"],
                    )
                    self._written_status.move_to_end(key)
                    while len(self._written_status) > _WRITTEN_STATUS_MAX:
                        self._written_status.popitem(last=False)
            except ApiError as exc:
                if exc.status != 404:
                    _LOG.warning("status of %s not updated: %s", key, exc.message)
                    if self.metrics is not None:
                        self.metrics.count_unseal_error("status", ns)
                    transient = transient or _transient(exc)
        if self.metrics is not None:
            if plan.error_reason:
                self.metrics.count_unseal_error(plan.error_reason, ns)
            self.metrics.set_condition(ns, name, plan.synced, labels=meta.get("labels") or {})
            self.metrics.set_key_usage(self.keys.usage_counts())
        if transient:
            _LOG.warning("reconcile %s hit an apiserver outage: will retry", key)
            return Outcome.TRANSIENT
        if plan.synced:
            _LOG.info("reconciled %s (secret %s)", key, plan.secret_action)
            return Outcome.DONE
        _LOG.warning("reconcile %s failed: %s", key, plan.message)
        return Outcome.RETRY if plan.retry else Outcome.DONE

    def _emit(self, key: str, sealed: Mapping[str, Any], ev: Any) -> None:
        try:
            self.gw.emit_event(sealed, ev.type, ev.reason, ev.message)
            with self._lock:
                self.counters["events"] += 1
        except ApiError as exc:
            _LOG.warning("event for %s not recorded: %s", key, exc.message)

    def close(self) -> None:
        """Flush pending events (bounded by their request timeouts)."""
        if self._event_pool is not None:
            self._event_pool.shutdown(wait=True, cancel_futures=False)

    def _forget(self, key: str, ns: str, name: str) -> None:
        self.keys.record_usage(key, None)
        with self._lock:
            self._written_status.pop(key, None)
            self.failed_unseal.discard(key)
        if self.metrics is not None:
            self.metrics.remove_condition(ns, name)
            self.metrics.set_key_usage(self.keys.usage_counts())
        if self.opts.old_gc_behavior:
            try:
                secret = self.gw.get_secret(ns, name)
                if secret is not None and any(
                    r.get("kind") == "SealedSecret" and r.get("controller")
                    for r in (secret.get("metadata") or {}).get("ownerReferences") or []
                ):
                    self.gw.delete_secret(ns, name, (secret.get("metadata") or {}).get("uid"))
            except ApiError as exc:
                _LOG.warning("old-gc-behavior: cannot delete Secret %s: %s", key, exc.message)

    def _with_last_status(self, key: str, sealed: Mapping[str, Any]) -> Mapping[str, Any]:
        with self._lock:
            written = self._written_status.get(key)
        gen = (sealed.get("metadata") or {}).get("generation")
        if written is None or written[0] != gen:
            return sealed
        merged = dict(sealed)
        merged["status"] = {**(sealed.get("status") or {}), **written[1]}
        return merged

    def owner_key_of_secret(self, secret: Mapping[str, Any]) -> str | None:
        """The SealedSecret key a deleted Secret belongs to (controller-owned or `managed`)."""
        meta = secret.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        owned = any(r.get("kind") == "SealedSecret" and r.get("controller") for r in refs)
        managed = (meta.get("annotations") or {}).get("sealedsecrets.bitnami.com/managed")
        if owned or managed == "true":
            return f"{meta.get('namespace')}/{meta.get('name')}"
        return None
