"""Prometheus metrics with upstream's names, on a private registry.

Why upstream's names: dashboards and alerts built for Bitnami's controller (its
`contrib/prometheus-mixin`, the chart's PrometheusRule, `SealedSecretsUnsealErrorHigh`) keep
working when sealkit replaces it. Why a private `CollectorRegistry`: tests start several
controllers in one process, and the default registry would refuse duplicate names. The standard
process, platform and GC collectors are registered on it too (``process_*``, ``python_info``,
``python_gc_*``): the generic CPU, memory and file-descriptor panels every Prometheus user has
(Go's controller exports ``process_*`` the same way) read them; ``process=False`` leaves them out.

Rules every label here obeys: never a secret value, never a ciphertext. SealedSecret names and
namespaces appear only in ``condition_info``, and not at all with ``omit_secret_labels`` (the
upstream ``--metrics-omit-secret-labels`` flag, because the names alone are an inventory).

Beyond upstream:

- ``sealkit_key_sealedsecrets{fingerprint}``: how many SealedSecrets each key currently opens,
  so an operator can see when an old key opens nothing any more and may be retired;
- ``leader_election_master_status{name}``: 1 on the replica that leads, 0 elsewhere.

Example::

    m = Metrics(revision="0.1.0")
    m.observe_http("/v1/cert.pem", "GET", 200, 0.002)
    body = m.exposition()  # bytes, prometheus text format
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = [
    "CONTENT_TYPE_LATEST",
    "UNSEAL_ERROR_REASONS",
    "Metrics",
]

UNSEAL_ERROR_REASONS = ("fetch", "unseal", "update", "unmanaged", "status")
_NS = "sealed_secrets_controller"
_INSTANCE_LABEL = "app.kubernetes.io/instance"

# Go's client exports no `*_created` series; dropping them keeps the exposition like upstream's.
disable_created_metrics()


class Metrics:
    """All controller metrics, one instance per controller (its own registry)."""

    def __init__(
        self,
        *,
        revision: str = "",
        omit_secret_labels: bool = False,
        registry: CollectorRegistry | None = None,
        process: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process:
            # The library's own instances: stateless readers of /proc and gc, shareable between
            # registries (a second ProcessCollector would only read /proc again).
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        self.omit_secret_labels = omit_secret_labels
        r = self.registry
        self.build_info = Gauge(
            f"{_NS}_build_info",
            "Build information.",
            ["revision"],
            registry=r,
        )
        # Upstream registers the series and never sets it: the value stays 0.
        self.build_info.labels(revision=revision)
        self.unseal_requests = Counter(
            f"{_NS}_unseal_requests",
            "Total number of sealed secret unseal requests",
            registry=r,
        )
        self.unseal_errors = Counter(
            f"{_NS}_unseal_errors",
            "Total number of sealed secret unseal errors by reason",
            ["reason", "namespace"],
            registry=r,
        )
        self.condition_info = Gauge(
            f"{_NS}_condition_info",
            "Current SealedSecrets condition status. "
            "Values are -1 (false), 0 (unknown or not set) and 1 (true)",
            ["namespace", "name", "condition", "ss_app_kubernetes_io_instance"],
            registry=r,
        )
        self.http_requests = Counter(
            f"{_NS}_http_requests",
            "Total number of HTTP requests by path, status code and method",
            ["path", "code", "method"],
            registry=r,
        )
        self.http_duration = Histogram(
            f"{_NS}_http_request_duration_seconds",
            "HTTP request duration in seconds by path and method",
            ["path", "method"],
            registry=r,
        )
        self.key_sealedsecrets = Gauge(
            "sealkit_key_sealedsecrets",
            "Number of SealedSecrets each sealing key (by public-key fingerprint) opens",
            ["fingerprint"],
            registry=r,
        )
        self.leader_status = Gauge(
            "leader_election_master_status",
            "Whether this replica is the elected leader (1) or not (0)",
            ["name"],
            registry=r,
        )
        self._lock = threading.Lock()
        # (namespace, name) -> the instance label value used, so delete can find the series.
        self._conditions: dict[tuple[str, str], str] = {}
        self._key_fingerprints: set[str] = set()

    # -- unseal ---------------------------------------------------------------------------
    def count_unseal_request(self) -> None:
        self.unseal_requests.inc()

    def count_unseal_error(self, reason: str, namespace: str) -> None:
        if reason not in UNSEAL_ERROR_REASONS:
            raise ValueError(f"unknown unseal error reason {reason!r}")
        self.unseal_errors.labels(reason=reason, namespace=namespace).inc()

    def set_condition(
        self,
        namespace: str,
        name: str,
        synced: bool | None,
        *,
        labels: Mapping[str, str] | None = None,
        condition: str = "Synced",
    ) -> None:
        """Record a SealedSecret's ``Synced`` condition: True 1, False -1, unknown 0.

        ``labels`` are the SealedSecret's own labels; only ``app.kubernetes.io/instance`` is
        read. Does nothing under ``omit_secret_labels``.
        """
        if self.omit_secret_labels:
            return
        instance = (labels or {}).get(_INSTANCE_LABEL, "")
        value = 0 if synced is None else (1 if synced else -1)
        with self._lock:
            old = self._conditions.get((namespace, name))
            if old is not None and old != instance:
                self._remove_series(namespace, name, old, condition)
            self._conditions[(namespace, name)] = instance
            self.condition_info.labels(
                namespace=namespace,
                name=name,
                condition=condition,
                ss_app_kubernetes_io_instance=instance,
            ).set(value)

    def remove_condition(self, namespace: str, name: str, *, condition: str = "Synced") -> None:
        """Drop the series of a deleted SealedSecret (upstream does this on delete)."""
        with self._lock:
            instance = self._conditions.pop((namespace, name), None)
            if instance is not None:
                self._remove_series(namespace, name, instance, condition)

    def _remove_series(self, namespace: str, name: str, instance: str, condition: str) -> None:
        try:
            self.condition_info.remove(namespace, name, condition, instance)
        except KeyError:
            pass

    # -- keys -------------------------------------------------------------------------------
    def set_key_usage(self, counts: Mapping[str, int]) -> None:
        """Replace the per-key usage gauge: ``{fingerprint: number of SealedSecrets}``.

        Pass every known key (with 0 for unused ones) so that "opens nothing" is visible.
        """
        with self._lock:
            for gone in self._key_fingerprints - set(counts):
                try:
                    self.key_sealedsecrets.remove(gone)
                except KeyError:
                    pass
            for fingerprint, count in counts.items():
                self.key_sealedsecrets.labels(fingerprint=fingerprint).set(count)
            self._key_fingerprints = set(counts)

    # -- leader -----------------------------------------------------------------------------
    def set_leader(self, name: str, leading: bool) -> None:
        self.leader_status.labels(name=name).set(1 if leading else 0)

    # -- http -------------------------------------------------------------------------------
    def observe_http(self, path: str, method: str, code: int, seconds: float) -> None:
        self.http_requests.labels(path=path, code=str(code), method=method.lower()).inc()
        self.http_duration.labels(path=path, method=method.lower()).observe(seconds)

    # -- exposition -------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (content type `CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)
