"""Per-client GCRA rate limiting for the controller's POST endpoints.

Why: `/v1/verify` and `/v1/rotate` cost one RSA private-key operation per value and key, so an
unauthenticated caller could burn the controller's CPU (upstream GHSA-jpp5-6cf2-prqh). Upstream
limits them with the `throttled` library's GCRA; this is the same algorithm with the same
meaning of the knobs, so `--rate-limit 2 --rate-limit-burst 2` behaves as it does upstream:

- ``rate`` is the steady number of requests per second;
- ``burst`` is how many requests may arrive *above* that rate at once, so an idle client gets
  ``burst + 1`` requests through immediately (this is ``X-RateLimit-Limit``).

GCRA keeps one number per key, the theoretical arrival time (TAT). A request is allowed when
``max(TAT, now) + T - tolerance <= now`` where ``T = 1/rate`` and ``tolerance = T * (burst+1)``.

The store is a bounded LRU (default 65536 keys, as upstream): a flood of distinct keys evicts the
oldest, which can only ever *forgive* a client, never block an innocent one.

Example::

    limiter = GcraLimiter(rate=2, burst=2)
    decision = limiter.allow("10.0.0.7 /v1/verify")
    if not decision.allowed:
        ...  # 429 with decision.headers()
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_KEYS", "Decision", "GcraLimiter"]

DEFAULT_MAX_KEYS = 65536


@dataclass(frozen=True)
class Decision:
    """The outcome of one `GcraLimiter.allow` call, with what the HTTP headers need."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the key is back to a full burst."""
    retry_after: float | None
    """Seconds until a retry can succeed; ``None`` when the request was allowed."""

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-*` and (when limited) `Retry-After`, rounded up to whole seconds."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(max(self.reset_after, 0.0))),
        }
        if self.retry_after is not None:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


class GcraLimiter:
    """Thread-safe GCRA limiter keyed by an arbitrary string (client + path)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        if burst < 0:
            raise ValueError("burst must be >= 0")
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self.limit = self.burst + 1
        self._interval = 1.0 / self.rate
        self._tolerance = self._interval * self.limit
        self._max_keys = max_keys
        self._clock = clock
        self._tat: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tat)

    def charge(self, key: str, cost: float) -> None:
        """Add ``cost`` requests' worth of debt to ``key`` without asking (work already admitted).

        Why: `/v1/verify` of 1,451 values is one request but 1,451 RSA operations; the caller
        charges the work it is about to do, so the client waits in proportion to it.
        """
        if cost <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tat[key] = max(self._tat.get(key, now), now) + cost * self._interval
            self._tat.move_to_end(key)
            while len(self._tat) > self._max_keys:
                self._tat.popitem(last=False)

    def allow(self, key: str) -> Decision:
        """Account one request for ``key`` and say whether it may proceed."""
        with self._lock:
            now = self._clock()
            tat = self._tat.get(key, now)
            new_tat = max(tat, now) + self._interval
            allow_at = new_tat - self._tolerance
            if now < allow_at:
                # Limited: the stored TAT is unchanged, so being refused costs nothing.
                ttl = max(tat - now, 0.0)
                retry_after = allow_at - now
                allowed = False
            else:
                ttl = new_tat - now
                retry_after = None
                allowed = True
                self._tat[key] = new_tat
                self._tat.move_to_end(key)
                while len(self._tat) > self._max_keys:
                    self._tat.popitem(last=False)
            remaining = math.floor((self._tolerance - ttl) / self._interval + 1e-9)
            return Decision(
                allowed=allowed,
                limit=self.limit,
                remaining=max(remaining, 0),
                reset_after=ttl,
                retry_after=retry_after,
            )
