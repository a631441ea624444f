"""GCRA limiter: upstream's (throttled's) meaning of rate and burst, on a fake clock."""

from __future__ import annotations

import pytest

from controller.ratelimit import GcraLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_client_gets_burst_plus_one_then_429() -> None:
    clock = Clock()
    lim = GcraLimiter(rate=2, burst=2, clock=clock)
    decisions = [lim.allow("c /v1/verify") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.limit == 3
    assert refused.retry_after == pytest.approx(0.5)
    headers = refused.headers()
    assert headers["X-RateLimit-Limit"] == "3"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["Retry-After"] == "1"
    assert int(headers["X-RateLimit-Reset"]) >= 1
    assert "Retry-After" not in decisions[0].headers()


def test_steady_rate_is_admitted_and_refusals_cost_nothing() -> None:
    clock = Clock()
    lim = GcraLimiter(rate=2, burst=0, clock=clock)
    assert lim.allow("k").allowed
    assert not lim.allow("k").allowed
    assert not lim.allow("k").allowed  # hammering does not push the next slot further out
    clock.now += 0.5
    assert lim.allow("k").allowed
    for _ in range(20):
        clock.now += 0.5
        assert lim.allow("k").allowed


def test_full_burst_comes_back_after_idle() -> None:
    clock = Clock()
    lim = GcraLimiter(rate=2, burst=2, clock=clock)
    for _ in range(3):
        assert lim.allow("k").allowed
    assert not lim.allow("k").allowed
    clock.now += 1.5
    assert [lim.allow("k").allowed for _ in range(4)] == [True, True, True, False]


def test_keys_are_independent() -> None:
    lim = GcraLimiter(rate=1, burst=0, clock=Clock())
    assert lim.allow("a /v1/verify").allowed
    assert not lim.allow("a /v1/verify").allowed
    assert lim.allow("a /v1/rotate").allowed
    assert lim.allow("b /v1/verify").allowed


def test_store_is_bounded_lru() -> None:
    clock = Clock()
    lim = GcraLimiter(rate=1, burst=0, max_keys=3, clock=clock)
    for key in "abcd":
        assert lim.allow(key).allowed
    assert len(lim) == 3
    assert lim.allow("a").allowed  # evicted, so forgiven
    assert not lim.allow("d").allowed  # still tracked


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, -1)])
def test_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        GcraLimiter(rate=rate, burst=burst)
