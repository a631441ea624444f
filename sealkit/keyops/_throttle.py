"""Retry controller calls that hit its rate limit (HTTP 429), with capped backoff.

`/v1/verify` and `/v1/rotate` are rate-limited per client (upstream default 2/s, burst 2), so a
tree of 1000 SealedSecrets through the controller takes minutes by design; these commands wait
instead of failing. Any other error is raised at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sealkit._exceptions import ClusterError

__all__ = ["retry_throttled"]

T = TypeVar("T")


def _throttled(exc: ClusterError) -> bool:
    text = str(exc)
    return "429" in text or "Too Many Requests" in text


def retry_throttled(
    fn: Callable[[], T],
    *,
    attempts: int = 60,
    first: float = 0.25,
    cap: float = 4.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    delay = first
    for attempt in range(attempts):
        try:
            return fn()
        except ClusterError as exc:
            if not _throttled(exc) or attempt == attempts - 1:
                raise
        sleep(delay)
        delay = min(cap, delay * 2)
    raise AssertionError("unreachable")
