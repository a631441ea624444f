"""The API's routes: each takes the functions it needs, as upstream's ``server.go`` does.

====================  =========================================================================
``/healthz``          200 ``ok\\n``, or 503 when a supervised thread died (`controller.supervisor`)
``/readyz``           200 when keys are loaded and caches synced, else 503 (never leadership:
                      every replica must serve ``/v1/cert.pem``)
``/v1/cert.pem``      the newest key's certificate; 500 ``cannot get certificate`` with no keys
``/v1/verify``        one SealedSecret (JSON or YAML): 200 if every ``encryptedData`` value
                      opens, 409 if not, 4xx for a bad body
``/v1/rotate``        one SealedSecret re-sealed with the newest key, scope kept, the outer
                      metadata copied over ``template.metadata`` (outer wins); compact JSON
====================  =========================================================================

The cheap routes answer on the event loop, so they stay answerable under any API load. The
POST routes are rate-limited per client and path (GCRA, `controller.ratelimit`): admission
costs one request; the body is then read, parsed with limits (`controller.http.body`) and worked
on in a small thread pool (``busy`` 503 when it and its queue are full, so at most that many
bodies are in memory), and the client is charged one more request per ``OPS_PER_REQUEST`` RSA
operations beyond the first ones. The client is the socket's peer unless that peer is a
trusted proxy (`client_address`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from controller.http.body import BadRequest, parse_sealed_secret, value_count
from controller.http.operations import (
    NotOpenable,
    Work,
    rotate_sealed_secret,
    verify_sealed_secret,
)
from controller.http.transport import BodyError, Request, Response
from controller.ratelimit import GcraLimiter

__all__ = [
    "OPS_PER_REQUEST",
    "KeySource",
    "WorkPool",
    "api_router",
    "client_address",
    "metrics_router",
]

_LOG = logging.getLogger("controller.http_api")
OPS_PER_REQUEST = 4
API_PATHS = ("/healthz", "/readyz", "/v1/cert.pem", "/v1/verify", "/v1/rotate")
Route = Callable[[Request], Awaitable[Response]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class KeyEntryLike(Protocol):
    @property
    def certificate_pem(self) -> bytes: ...

    @property
    def public_key(self) -> RSAPublicKey: ...


class KeySource(Protocol):
    """What the API needs from the key ring (satisfied by `controller.keyring.KeyRing`)."""

    def latest(self) -> KeyEntryLike | None: ...

    def has_keys(self) -> bool: ...

    def private_keys(self) -> Sequence[RSAPrivateKey]: ...


class Busy(Exception):
    """The work pool and its queue are full (503)."""


class WorkPool:
    """A few threads for parsing and RSA, with a bounded queue in front of them."""

    def __init__(self, workers: int, queue: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="http-work")
        self._capacity = workers + queue
        self._pending = 0

    def admit(self) -> None:
        if self._pending >= self._capacity:
            raise Busy()
        self._pending += 1  # only ever touched on the event loop's thread

    def release(self) -> None:
        self._pending -= 1

    async def run(self, fn: Callable[[], Response]) -> Response:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def parse_networks(specs: Sequence[str]) -> list[Network]:
    """``--trusted-proxies`` entries (CIDRs or single addresses) to networks."""
    return [ipaddress.ip_network(s.strip(), strict=False) for s in specs if s.strip()]


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


def client_address(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The socket's peer, unless it is a trusted proxy: then the nearest untrusted
    ``X-Forwarded-For`` hop (a client cannot pick its own bucket by sending the header)."""
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _cert_route(keys: KeySource) -> Route:
    async def cert(_req: Request) -> Response:
        entry = keys.latest() if keys.has_keys() else None
        if entry is None:
            return Response(500, b"cannot get certificate\n")
        return Response(200, entry.certificate_pem, content_type="application/x-pem-file")

    return cert


def _probe_route(check: Callable[[], bool], failed: bytes) -> Route:
    async def probe(_req: Request) -> Response:
        return Response(200, b"ok\n") if check() else Response(503, failed)

    return probe


def _verify(keys: KeySource) -> Callable[[dict[str, Any], Work], Response]:
    def verify(sealed: dict[str, Any], work: Work) -> Response:
        ok = verify_sealed_secret(sealed, keys.private_keys(), work)
        return Response(200 if ok else 409)

    return verify


def _rotate(keys: KeySource) -> Callable[[dict[str, Any], Work], Response]:
    def rotate(sealed: dict[str, Any], work: Work) -> Response:
        entry = keys.latest() if keys.has_keys() else None
        if entry is None:
            return Response(500)
        try:
            result, overwritten = rotate_sealed_secret(
                sealed, keys.private_keys(), entry.public_key, work
            )
        except NotOpenable:
            return Response(409)
        if overwritten:
            meta = sealed.get("metadata") or {}
            _LOG.warning(
                "rotate: template metadata of SealedSecret %r/%r differs from its "
                "metadata; the metadata wins",
                meta.get("namespace", ""),
                meta.get("name", ""),
            )
        body = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
        return Response(200, body, content_type="application/json")

    return rotate


def _sealed_route(
    operation: Callable[[dict[str, Any], Work], Response],
    limiter: GcraLimiter,
    pool: WorkPool,
    trusted: Sequence[Network],
) -> Route:
    async def route(req: Request) -> Response:
        client = client_address(req.peer, req.headers.get("x-forwarded-for", ""), trusted)
        bucket = f"{client} {req.path}"
        decision = limiter.allow(bucket)
        headers = decision.headers()
        if not decision.allowed:
            # The body is never read: a refused client costs us nothing.
            return Response(429, b"too many requests\n", headers=headers, close=True)
        try:
            pool.admit()
        except Busy:
            return Response(503, b"busy\n", headers={**headers, "Retry-After": "1"}, close=True)
        try:
            body = await req.body()

            def work() -> Response:
                sealed = parse_sealed_secret(body)
                units = math.ceil(value_count(sealed) / OPS_PER_REQUEST)
                limiter.charge(bucket, units - 1)  # admission paid for the first one
                spent = Work()
                try:
                    response = operation(sealed, spent)
                finally:
                    limiter.charge(bucket, math.ceil(spent.count / OPS_PER_REQUEST) - max(units, 1))
                return Response(
                    response.status,
                    response.body,
                    response.content_type,
                    {**headers, **response.headers},
                )

            return await pool.run(work)
        finally:
            pool.release()

    return route


def _router(routes: Mapping[str, Route], metrics: Any) -> Route:
    async def handle(req: Request) -> Response:
        started = time.perf_counter()
        try:
            route = routes.get(req.path)
            response = Response(404, b"404 page not found\n") if route is None else await route(req)
        except BadRequest as exc:
            response = Response(exc.status, (str(exc) + "\n").encode(), close=True)
        except BodyError:
            raise  # the transport answers (413, 400) or drops a too slow client
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client
            _LOG.error("http: %s %s failed: %s", req.method, req.path, type(exc).__name__)
            _LOG.debug("http: failure detail", exc_info=True)
            response = Response(500, close=True)
        if metrics is not None and req.path in API_PATHS:
            metrics.observe_http(
                req.path, req.method, response.status, time.perf_counter() - started
            )
        return response

    return handle


def api_router(
    keys: KeySource,
    *,
    ready: Callable[[], bool],
    healthy: Callable[[], bool],
    limiter: GcraLimiter,
    pool: WorkPool,
    trusted: Sequence[Network],
    metrics: Any,
) -> Route:
    """The API's routing table: each route built from the functions it needs."""
    return _router(
        {
            "/healthz": _probe_route(healthy, b"unhealthy\n"),
            "/readyz": _probe_route(ready, b"not ready\n"),
            "/v1/cert.pem": _cert_route(keys),
            "/v1/verify": _sealed_route(_verify(keys), limiter, pool, trusted),
            "/v1/rotate": _sealed_route(_rotate(keys), limiter, pool, trusted),
        },
        metrics,
    )


def metrics_router(exposition: Callable[[], bytes], content_type: str) -> Route:
    """The metrics listener serves ``/metrics`` only."""

    async def metrics_route(_req: Request) -> Response:
        return Response(200, exposition(), content_type=content_type)

    return _router({"/metrics": metrics_route}, None)
