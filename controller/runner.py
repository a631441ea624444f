"""Wiring of informers, the work queue and worker threads around one `Reconciler`.

Informers run on every replica (warm caches, readiness); the workers run only while this
replica leads (`start_workers`/`stop_workers` are the elector's callbacks). Handlers only
enqueue keys, following upstream's queueing rules (compat §7.2):

- SealedSecret added -> enqueue; updated -> enqueue only if `spec` changed (a metadata-only
  edit does nothing); deleted -> enqueue (the reconcile drops metrics and the key hint);
- a Secret that was controller-owned by a SealedSecret (or `managed`) deleted -> enqueue its
  SealedSecret, which re-creates it (unless `--skip-recreate`);
- a new or changed sealing key -> re-enqueue the SealedSecrets that failed to unseal.

A key that keeps failing is retried with backoff up to `--max-unseal-retries` times, then
dropped until its next change (as upstream).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

from controller.executor import Outcome, ReconcileOptions, Reconciler
from controller.informer import Handlers, Informer, RawListWatch, object_key, slim_object
from controller.keyring import KeyRing
from controller.kube_gateway import RealKubeGateway, sealed_path, secret_path
from controller.reconcile import slim_sealed, slim_secret, spec_key
from controller.workqueue import WorkQueue

__all__ = ["SealedSecretController"]

_LOG = logging.getLogger(__name__)


class SealedSecretController:
    def __init__(
        self,
        gateway: RealKubeGateway,
        keyring: KeyRing,
        *,
        namespaces: list[str] | None,
        label_selector: str = "",
        metrics: Any = None,
        workers: int = 8,
        max_retries: int = 5,
        skip_recreate: bool = False,
        options: ReconcileOptions | None = None,
    ) -> None:
        """`namespaces=None` watches the whole cluster; otherwise one informer set each."""
        self.gw = gateway
        self.keys = keyring
        self.queue = WorkQueue()
        self.n_workers = workers
        self.max_retries = max_retries
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._outage_tries: dict[str, int] = {}
        self._leading = threading.Event()
        self._sealed: dict[str | None, Informer] = {}
        self._secrets: dict[str | None, Informer] = {}
        for ns in namespaces if namespaces is not None else [None]:
            self._sealed[ns] = Informer(
                RawListWatch(gateway, sealed_path(ns), label_selector=label_selector),
                Handlers(self._sealed_added, self._sealed_updated, self._sealed_deleted),
                name=f"sealedsecrets-{ns or 'all'}",
                transform=lambda o: slim_object(slim_sealed(o)),
            )
            if not skip_recreate:
                self._secrets[ns] = Informer(
                    RawListWatch(gateway, secret_path(ns), label_selector=label_selector),
                    Handlers(on_delete=self._secret_deleted),
                    name=f"secrets-{ns or 'all'}",
                    transform=slim_secret,
                )
        self.reconciler = Reconciler(
            gateway,
            keyring,
            sealed_lookup=self.get_sealed,
            secret_lookup=None if skip_recreate else self.get_secret,
            metrics=metrics,
            options=options,
        )
        keyring.on_change(self._keys_changed)

    # -- caches -------------------------------------------------------------------------------
    def _informer_for(self, table: dict[str | None, Informer], ns: str) -> Informer | None:
        return table.get(ns) or table.get(None)

    def get_sealed(self, key: str) -> Mapping[str, Any] | None:
        inf = self._informer_for(self._sealed, key.partition("/")[0])
        return inf.get(key) if inf is not None else None

    def get_secret(self, ns: str, name: str) -> Mapping[str, Any] | None:
        inf = self._informer_for(self._secrets, ns)
        if inf is None:
            return self.gw.get_secret(ns, name)
        return inf.get(f"{ns}/{name}")

    def informers(self) -> list[Informer]:
        return [*self._sealed.values(), *self._secrets.values()]

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers())

    def sealed_keys(self) -> list[str]:
        return [k for inf in self._sealed.values() for k in inf.keys()]

    # -- handlers -----------------------------------------------------------------------------
    def _sealed_added(self, obj: dict[str, Any]) -> None:
        self.queue.add(object_key(obj))

    def _sealed_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if spec_key(old) != spec_key(new):
            self.queue.forget(object_key(new))
            self.queue.add(object_key(new))

    def _sealed_deleted(self, obj: dict[str, Any]) -> None:
        self.queue.add(object_key(obj))

    def _secret_deleted(self, secret: dict[str, Any]) -> None:
        key = self.reconciler.owner_key_of_secret(secret)
        if key is not None and self.get_sealed(key) is not None:
            _LOG.info("Secret %s deleted out of band: re-creating", key)
            self.queue.add(key)

    def _keys_changed(self) -> None:
        for key in list(self.reconciler.failed_unseal):
            self.queue.forget(key)
            self.queue.add(key)

    # -- lifecycle ----------------------------------------------------------------------------
    def start_informers(self) -> None:
        for inf in self.informers():
            inf.start()

    def wait_synced(self, timeout: float) -> bool:
        return all(i.wait_synced(timeout) for i in self.informers())

    def start_workers(self) -> None:
        """Begin reconciling (on becoming leader): every cached SealedSecret is enqueued."""
        if self._leading.is_set():
            return
        self._leading.set()
        for key in self.sealed_keys():
            self.queue.add(key)
        workers = [
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            for i in range(self.n_workers)
        ]
        for t in workers:
            t.start()
        # Published only once started: `workers_alive()` (a /healthz probe) must never see a
        # created-but-not-started thread, which it would report as dead (and the process exit).
        self._workers = workers
        _LOG.info("reconciling with %d workers", self.n_workers)

    def workers_alive(self) -> bool:
        """While leading, every worker thread runs (for `controller.supervisor`)."""
        workers = list(self._workers)
        return not self._leading.is_set() or all(t.is_alive() for t in workers)

    def stop_workers(self, timeout: float = 10.0) -> None:
        """Stop taking keys; wait (bounded) for in-flight reconciles to finish."""
        self._leading.clear()
        for t in self._workers:
            if t is not threading.current_thread():
                t.join(timeout)
        self._workers = []

    def shutdown(self, timeout: float = 10.0) -> None:
        self.stop_workers(timeout)
        self.queue.shutdown()
        self.reconciler.close()
        for inf in self.informers():
            inf.stop(timeout=2.0)

    def _work(self) -> None:
        while self._leading.is_set():
            key = self.queue.get(timeout=0.25)
            if key is None:
                if self.queue.shutting_down:
                    return
                continue
            assert isinstance(key, str)
            try:
                outcome = self.reconciler.reconcile(key)
            except Exception:  # noqa: BLE001 - one bad object must not kill a worker
                _LOG.exception("reconcile %s crashed", key)
                outcome = Outcome.RETRY
            try:
                if outcome is Outcome.TRANSIENT:
                    # Outages are not the object's fault: back off (capped), never give up.
                    with self._lock:
                        n = self._outage_tries.get(key, 0)
                        self._outage_tries[key] = n + 1
                    self.queue.add_after(
                        key, min(30.0, 0.25 * 2 ** min(n, 8)) * random.uniform(1.0, 1.5)
                    )
                    continue
                with self._lock:
                    self._outage_tries.pop(key, None)
                if outcome is Outcome.RETRY and self.queue.num_requeues(key) < self.max_retries:
                    self.queue.add_rate_limited(key)
                else:
                    if outcome is Outcome.RETRY:
                        _LOG.warning("giving up on %s after %d retries", key, self.max_retries)
                    self.queue.forget(key)
            finally:
                self.queue.done(key)
