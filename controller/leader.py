"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics.

Why our own: the `kubernetes` 36.x client ships only a ConfigMap lock whose `run()` blocks with
no stop and no release, and calls `sys.exit` on configuration errors. This elector is the
client-go algorithm (`tools/leaderelection`) with dict bodies, on `LeaseApi` (three calls over
`controller.kube_gateway.RealKubeGateway`, so the controller never imports the official
client) or on the official client's `CoordinationV1Api` (same method names; the tests use it):

- a candidate GETs the Lease; if it is missing it CREATEs it (409 = another candidate won);
- a Lease held by someone else counts as expired only when the record has not changed for
  ``lease_duration`` seconds *as measured on our own monotonic clock* since we first saw it,
  so clock skew between nodes cannot make two replicas lead;
- acquiring or renewing is a REPLACE guarded by the observed ``resourceVersion`` (409 = lost the
  race, nothing written);
- the leader renews every ``retry_period``; if no renewal succeeded for ``renew_deadline`` it
  steps down (stops its leader-only work) *before* anyone else can take over, because
  ``renew_deadline < lease_duration``; it also steps down at once when it sees another holder;
- `release()` (on shutdown) writes an empty ``holderIdentity`` and ``leaseDurationSeconds=1``,
  like client-go's ``ReleaseOnCancel``, so a standby takes over on its next retry instead of
  after a full lease.

Callbacks run on the elector's thread: ``on_started_leading`` must return promptly (start the
workers), and ``on_stopped_leading`` must return only once leader-only work has stopped.

Example::

    elector = LeaseElector(LeaseApi(gateway), namespace="kube-system",
                           on_started_leading=start_workers, on_stopped_leading=stop_workers)
    thread = elector.start()          # or elector.run() on your own thread
    ...
    elector.stop(release=True)        # on SIGTERM
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = [
    "DEFAULT_LEASE_NAME",
    "LeaseApi",
    "LeaseElector",
    "LeaderStatusSink",
    "default_identity",
]

DEFAULT_LEASE_NAME = "sealed-secrets-controller"
_LOG = logging.getLogger(__name__)
_JITTER = 1.2  # client-go's JitterFactor for the acquire loop


def _http_status(exc: BaseException) -> int:
    """The HTTP status of an apiserver error (`ApiError` or the client's `ApiException`);
    0 when there was no answer at all (refused, timeout)."""
    status = getattr(exc, "status", 0)
    return status if isinstance(status, int) else 0


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data


class LeaseApi:
    """The three Lease calls of `CoordinationV1Api` the elector makes, on our gateway."""

    def __init__(self, gateway: Any) -> None:
        self.gw = gateway

    def _call(self, method: str, path: str, body: Any, timeout: Any) -> _Body:
        got = self.gw.request(method, path, body=body, timeout=timeout, limit=False)
        return _Body(json.dumps(got).encode())

    @staticmethod
    def _path(namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    def read_namespaced_lease(self, name: str, namespace: str, **kw: Any) -> _Body:
        return self._call("GET", self._path(namespace, name), None, kw.get("_request_timeout"))

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kw: Any) -> _Body:
        return self._call("PUT", self._path(namespace, name), body, kw.get("_request_timeout"))

    def create_namespaced_lease(self, namespace: str, body: Any, **kw: Any) -> _Body:
        return self._call("POST", self._path(namespace), body, kw.get("_request_timeout"))


class LeaderStatusSink(Protocol):
    """Anything with `set_leader(name, leading)`, e.g. `controller.metrics.Metrics`."""

    def set_leader(self, name: str, leading: bool) -> None: ...


def default_identity() -> str:
    """Pod name (``POD_NAME`` or the hostname) plus a random suffix, like client-go's."""
    base = os.environ.get("POD_NAME") or socket.gethostname() or "sealkit-controller"
    return f"{base}_{uuid.uuid4().hex[:12]}"


def _now_micro() -> str:
    # metav1.MicroTime wants RFC 3339 with exactly six fractional digits.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """One candidate in a Lease election. Thread-safe `is_leader`, `stop()` and `release()`."""

    def __init__(
        self,
        coordination_api: Any,
        *,
        namespace: str,
        name: str = DEFAULT_LEASE_NAME,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        status_sink: LeaderStatusSink | None = None,
        release_on_stop: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period * _JITTER > 0:
            raise ValueError(
                "need lease_duration > renew_deadline > retry_period * 1.2 > 0 "
                f"(got {lease_duration}, {renew_deadline}, {retry_period})"
            )
        self._api = coordination_api
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._sink = status_sink
        self._release_on_stop = release_on_stop
        self._clock = clock
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._lock = threading.Lock()  # serialises API writes (renew vs release)
        self._observed_record: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._observed_rv: str | None = None
        self._thread: threading.Thread | None = None
        if self._sink is not None:
            self._sink.set_leader(self.name, False)

    # -- public ---------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def holder(self) -> str:
        """The holder identity last observed on the Lease ("" if none or released)."""
        return str((self._observed_record or {}).get("holderIdentity") or "")

    def start(self) -> threading.Thread:
        """Run the election on a daemon thread and return it."""
        thread = threading.Thread(target=self.run, name=f"lease-elector-{self.name}", daemon=True)
        thread.start()
        # Published only once started: the supervisor's probe (/healthz) would count a
        # created-but-not-started thread as dead, and the controller would exit.
        self._thread = thread
        return thread

    def stop(self, *, release: bool | None = None, timeout: float | None = 15.0) -> None:
        """Stop campaigning; step down if leading; release the Lease unless told not to.

        ``release=False`` simulates a crash for tests: the Lease stays held until it expires.
        """
        if release is not None:
            self._release_on_stop = release
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """Campaign until stopped; lead while renewals succeed; campaign again after losing."""
        try:
            while not self._stop.is_set():
                if not self._acquire():
                    break
                self._become_leader()
                try:
                    self._renew_loop()
                finally:
                    self._step_down()
        finally:
            if self._release_on_stop:
                self.release()

    def release(self) -> bool:
        """Give the Lease up if we hold it (empty holder, 1 s duration). True if released."""
        with self._lock:
            record = self._observed_record
            if record is None or record.get("holderIdentity") != self.identity:
                return False
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "resourceVersion": self._observed_rv,
                },
                "spec": {
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "acquireTime": _now_micro(),
                    "renewTime": _now_micro(),
                    "leaseTransitions": record.get("leaseTransitions") or 0,
                },
            }
            try:
                self._api.replace_namespaced_lease(
                    self.name,
                    self.namespace,
                    body,
                    _preload_content=False,
                    _request_timeout=self._timeout(),
                )
            except Exception as exc:  # network errors: the lease simply expires
                status = _http_status(exc)
                _LOG.warning(
                    "lease %s/%s: release failed: %s",
                    self.namespace,
                    self.name,
                    f"HTTP {status}" if status else type(exc).__name__,
                )
                return False
            self._observed_record = dict(body["spec"])
            _LOG.info("lease %s/%s: released by %s", self.namespace, self.name, self.identity)
            return True

    # -- loops ----------------------------------------------------------------------------
    def _acquire(self) -> bool:
        """Retry until we hold the Lease (True) or are stopped (False)."""
        _LOG.info("lease %s/%s: %s campaigning", self.namespace, self.name, self.identity)
        while not self._stop.is_set():
            if self._try_acquire_or_renew():
                return True
            self._stop.wait(self.retry_period * (1 + random.random() * (_JITTER - 1)))
        return False

    def _renew_loop(self) -> None:
        last_ok = self._clock()
        while not self._stop.is_set():
            self._stop.wait(self.retry_period)
            if self._stop.is_set():
                return
            if self._try_acquire_or_renew():
                last_ok = self._clock()
                continue
            if self.holder() not in ("", self.identity):
                _LOG.warning(
                    "lease %s/%s: now held by %s; stepping down",
                    self.namespace,
                    self.name,
                    self.holder(),
                )
                return
            if self._clock() - last_ok >= self.renew_deadline:
                _LOG.warning(
                    "lease %s/%s: renew deadline passed; stepping down", self.namespace, self.name
                )
                return

    def _become_leader(self) -> None:
        self._leading.set()
        _LOG.info("lease %s/%s: %s became leader", self.namespace, self.name, self.identity)
        if self._sink is not None:
            self._sink.set_leader(self.name, True)
        if self._on_started is not None:
            self._on_started()

    def _step_down(self) -> None:
        if not self._leading.is_set():
            return
        self._leading.clear()
        if self._sink is not None:
            self._sink.set_leader(self.name, False)
        _LOG.info("lease %s/%s: %s stopped leading", self.namespace, self.name, self.identity)
        if self._on_stopped is not None:
            self._on_stopped()

    # -- one attempt ----------------------------------------------------------------------
    def _timeout(self) -> tuple[float, float]:
        return (self.retry_period, max(self.renew_deadline / 2, self.retry_period))

    def _try_acquire_or_renew(self) -> bool:
        with self._lock:
            try:
                return self._attempt()
            except Exception as exc:  # HTTP errors, connection refused, timeouts: retry later
                status = _http_status(exc)
                _LOG.info(
                    "lease %s/%s: attempt failed: %s",
                    self.namespace,
                    self.name,
                    f"HTTP {status}" if status else type(exc).__name__,
                )
                return False

    def _attempt(self) -> bool:
        now_local = self._clock()
        stamp = _now_micro()
        try:
            resp = self._api.read_namespaced_lease(
                self.name,
                self.namespace,
                _preload_content=False,
                _request_timeout=self._timeout(),
            )
        except Exception as exc:
            if _http_status(exc) != 404:
                raise
            return self._create(stamp, now_local)
        lease = json.loads(resp.data)
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        rv = lease.get("metadata", {}).get("resourceVersion")
        if spec != self._observed_record:
            self._observed_record = spec
            self._observed_at = now_local
        self._observed_rv = rv
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity:
            if now_local < self._observed_at + float(duration):
                return False  # someone else holds a valid lease
        new_spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(round(self.lease_duration)),
            "renewTime": stamp,
            "acquireTime": spec.get("acquireTime") or stamp,
            "leaseTransitions": spec.get("leaseTransitions") or 0,
        }
        if holder != self.identity:
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": rv},
            "spec": new_spec,
        }
        try:
            resp = self._api.replace_namespaced_lease(
                self.name,
                self.namespace,
                body,
                _preload_content=False,
                _request_timeout=self._timeout(),
            )
        except Exception as exc:
            if _http_status(exc) == 409:
                return False  # lost the race: someone wrote after our read
            raise
        self._record_written(resp, new_spec, self._clock())
        return True

    def _create(self, stamp: str, now_local: float) -> bool:
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(round(self.lease_duration)),
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 0,
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        try:
            resp = self._api.create_namespaced_lease(
                self.namespace, body, _preload_content=False, _request_timeout=self._timeout()
            )
        except Exception as exc:
            if _http_status(exc) == 409:
                return False
            raise
        self._record_written(resp, spec, now_local)
        return True

    def _record_written(self, resp: Any, spec: dict[str, Any], now_local: float) -> None:
        lease = json.loads(resp.data)
        self._observed_record = dict(lease.get("spec") or spec)
        self._observed_rv = lease.get("metadata", {}).get("resourceVersion")
        self._observed_at = now_local
