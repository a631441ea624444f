"""Start the API (``--listen-addr``) and metrics (``--listen-metrics-addr``) listeners.

Each listener is its own `HttpServer` (event loop thread, connection caps, deadlines), so a
flood on the API never takes the metrics listener's budget, and the probes answer on the API
loop without waiting for the work pool.

Example::

    api = serve_api(":0", keys=keyring, ready=lambda: synced.is_set(), metrics=metrics)
    print(api.port)
    api.shutdown()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controller.http.routes import KeySource, WorkPool, api_router, metrics_router, parse_networks
from controller.http.transport import HttpServer, Limits, parse_listen_addr
from controller.metrics import CONTENT_TYPE_LATEST, Metrics
from controller.ratelimit import GcraLimiter

__all__ = ["ApiOptions", "ServerHandle", "serve_api", "serve_metrics"]

_LOG = logging.getLogger("controller.http_api")


@dataclass(frozen=True)
class ApiOptions:
    """Tunables of the API listener (the first six are upstream's flag defaults)."""

    rate_limit: float = 2.0
    rate_limit_burst: int = 2
    read_timeout: float = 120.0
    write_timeout: float = 120.0
    max_body_bytes: int = 1 << 20
    max_connections: int = 512
    max_connections_per_client: int = 32
    header_timeout: float = 10.0
    trusted_proxies: Sequence[str] = ()
    workers: int = 2
    queue: int = 8


class ServerHandle:
    """A running listener: ``.host``, ``.port``, ``.url``, ``.thread`` and ``.shutdown()``."""

    def __init__(self, server: HttpServer, pool: WorkPool | None = None) -> None:
        self._server, self._pool = server, pool
        self.host, self.port, self.thread = server.host, server.port, server.thread

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def open_connections(self) -> int:
        return self._server.open_connections

    def shutdown(self, timeout: float = 5.0) -> None:
        self._server.shutdown(timeout)
        if self._pool is not None:
            self._pool.shutdown()


def serve_api(
    listen_addr: str = ":8080",
    *,
    keys: KeySource,
    ready: Callable[[], bool] | None = None,
    healthy: Callable[[], bool] | None = None,
    metrics: Metrics | None = None,
    options: ApiOptions | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ServerHandle:
    """Start the API listener. ``ready`` defaults to "has keys", ``healthy`` to always.

    ``clock`` is the rate limiter's: tests pass a manual one, so that a slow machine taking
    more than a refill interval between requests cannot turn an expected 429 into a 200.
    """
    opts = options or ApiOptions()
    pool = WorkPool(opts.workers, opts.queue)
    router = api_router(
        keys,
        ready=ready or keys.has_keys,
        healthy=healthy or (lambda: True),
        limiter=GcraLimiter(opts.rate_limit, opts.rate_limit_burst, clock=clock),
        pool=pool,
        trusted=parse_networks(opts.trusted_proxies),
        metrics=metrics,
    )
    limits = Limits(
        max_connections=opts.max_connections,
        max_connections_per_client=opts.max_connections_per_client,
        header_timeout=opts.header_timeout,
        idle_timeout=opts.read_timeout,
        read_timeout=opts.read_timeout,
        write_timeout=opts.write_timeout,
        max_body_bytes=opts.max_body_bytes,
    )
    host, port = parse_listen_addr(listen_addr)
    handle = ServerHandle(HttpServer(host, port, router, limits, name="http-api"), pool)
    _LOG.info("http: API listening on %s:%d", handle.host or "*", handle.port)
    return handle


def serve_metrics(
    listen_addr: str = ":8081",
    *,
    metrics: Metrics,
    timeout: float = 120.0,
    limits: Limits | None = None,
) -> ServerHandle:
    """Start the ``/metrics`` listener (no request bodies: ``max_body_bytes`` is 0)."""
    host, port = parse_listen_addr(listen_addr)
    lim = limits or Limits(
        max_connections=64,
        max_connections_per_client=16,
        idle_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        max_body_bytes=0,
    )
    router: Any = metrics_router(metrics.exposition, CONTENT_TYPE_LATEST)
    handle = ServerHandle(HttpServer(host, port, router, lim, name="http-metrics"))
    _LOG.info("http: metrics listening on %s:%d", handle.host or "*", handle.port)
    return handle
