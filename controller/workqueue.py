"""A de-duplicating, rate-limited work queue with client-go's semantics.

- **dirty + processing sets**: a key is queued at most once; a key being processed is never
  handed to a second worker; re-adding it while processing replays it after `done()`;
- `add_after(key, delay)` for delayed re-adds (one timer thread, a heap);
- `add_rate_limited(key)`: the max of a per-item exponential backoff (5 ms doubling to 1000 s)
  and an overall token bucket (10 qps, burst 100), as client-go's default controller limiter;
- `forget(key)` resets the item's backoff after a success; `num_requeues(key)` lets the
  caller enforce `--max-unseal-retries`;
- `shutdown()` wakes every waiting worker; `get()` then returns None.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

__all__ = ["WorkQueue"]


class WorkQueue:
    def __init__(
        self,
        *,
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        qps: float = 10.0,
        burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._shutting_down = False
        self._base, self._max = base_delay, max_delay
        self._qps, self._burst = qps, burst
        self._bucket_next = 0.0  # time at which the next token is free (token-bucket limiter)
        self._clock = clock
        self._waiting: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._timer_cond = threading.Condition()
        self._timer = threading.Thread(target=self._run_timer, name="workqueue-delay", daemon=True)
        self._timer.start()

    # -- basic queue ------------------------------------------------------------------------
    def add(self, key: Hashable) -> None:
        with self._cond:
            if self._shutting_down or key in self._dirty:
                return
            self._dirty.add(key)
            if key in self._processing:
                return  # replayed by done()
            self._queue.append(key)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Hashable | None:
        """The next key (marked processing), or None on shutdown or timeout."""
        with self._cond:
            deadline = None if timeout is None else self._clock() + timeout
            while not self._queue and not self._shutting_down:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if not self._queue:
                return None
            key = self._queue.popleft()
            self._processing.add(key)
            self._dirty.discard(key)
            return key

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def busy(self) -> bool:
        """True while anything is queued, processing or waiting for its delay."""
        with self._cond, self._timer_cond:
            return bool(self._queue or self._processing or self._waiting)

    # -- delays and rate limiting -----------------------------------------------------------
    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._timer_cond:
            if self._shutting_down:
                return
            heapq.heappush(self._waiting, (self._clock() + delay, next(self._seq), key))
            self._timer_cond.notify()

    def when(self, key: Hashable) -> float:
        """The rate limiter's delay for another retry of `key` (and count the failure)."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
            backoff = min(self._max, self._base * (2 ** min(n, 60)))
            now = self._clock()
            bucket = 0.0
            if self._qps > 0:
                # Token bucket: `burst` tokens, refilled at qps; reserve one.
                earliest = now - self._burst / self._qps
                self._bucket_next = max(self._bucket_next, earliest) + 1.0 / self._qps
                bucket = max(0.0, self._bucket_next - now)
            return max(backoff, bucket)

    def add_rate_limited(self, key: Hashable) -> None:
        self.add_after(key, self.when(key))

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def _run_timer(self) -> None:
        while True:
            with self._timer_cond:
                while True:
                    if self._shutting_down:
                        return
                    now = self._clock()
                    if self._waiting and self._waiting[0][0] <= now:
                        _, _, key = heapq.heappop(self._waiting)
                        break
                    timeout = self._waiting[0][0] - now if self._waiting else None
                    self._timer_cond.wait(timeout if timeout is None else min(timeout, 1.0))
            self.add(key)

    # -- lifecycle --------------------------------------------------------------------------
    def shutdown(self) -> None:
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()
        with self._timer_cond:
            self._timer_cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down
