"""Map a function over index ranges, in forked workers when the work is big enough.

Why fork: seal-tree's workers need the parent's state (options, the RSA public key, callables),
which does not pickle. A forked child inherits it instead, so only ``(lo, hi)`` ranges go out and
small results come back. The state is explicit: `map_chunks` calls ``func(state, lo, hi)`` and
keeps ``(func, state)`` in `_INHERITED` under a token only while its pool runs; nothing else
is module-level. Example::

    squares = map_chunks(lambda xs, lo, hi: [x * x for x in xs[lo:hi]], list(range(500)), 500,
                         jobs=4)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MIN_PER_WORKER", "map_chunks"]

S = TypeVar("S")
R = TypeVar("R")

# Forking costs more than sealing a few files: below this many items per worker, stay in-process.
MIN_PER_WORKER = 50
_INHERITED: dict[int, tuple[Callable[[Any, int, int], list[Any]], Any]] = {}
_TOKENS = itertools.count()


def _call(token: int, lo: int, hi: int) -> list[Any]:
    """Worker entry (pickled by name): the inherited function on its inherited state."""
    func, state = _INHERITED[token]
    return func(state, lo, hi)


def map_chunks(
    func: Callable[[S, int, int], list[R]],
    state: S,
    count: int,
    *,
    jobs: int,
    on_chunk: Callable[[int], None] | None = None,
    cleanup: Callable[[list[R]], None] | None = None,
    min_per_worker: int | None = None,
) -> list[R]:
    """``func(state, lo, hi)`` over ranges covering ``count`` items, results in order.

    At most ``jobs`` workers, and only with at least ``min_per_worker`` (default
    `MIN_PER_WORKER`; tests pass a small one) items each. ``on_chunk(n)`` reports progress. If any
    chunk fails, ``cleanup`` gets the results of every chunk that did not (so staged files never
    leak) and the first error is raised.
    """
    import multiprocessing

    workers = min(jobs, count // max(1, min_per_worker or MIN_PER_WORKER))
    if "fork" not in multiprocessing.get_all_start_methods():
        workers = 1
    size = max(10, -(-count // (max(workers, 1) * 8)))  # ~8 chunks per worker: steady progress
    bounds = [(i, min(i + size, count)) for i in range(0, count, size)]
    results: list[R] = []
    if workers <= 1:
        try:
            for lo, hi in bounds:
                results.extend(func(state, lo, hi))
                if on_chunk:
                    on_chunk(hi - lo)
        except BaseException:
            if cleanup:
                cleanup(results)
            raise
        return results
    import sys
    from concurrent.futures import ProcessPoolExecutor

    for stream in (sys.stdout, sys.stderr):  # a child flushing a copied buffer would repeat it
        stream.flush()
    token = next(_TOKENS)
    _INHERITED[token] = (func, state)
    failure: BaseException | None = None
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_call, token, lo, hi) for lo, hi in bounds]
            for (lo, hi), future in zip(bounds, futures, strict=True):
                try:
                    results.extend(future.result())
                except BaseException as exc:  # re-raised below, after cleanup
                    failure = failure or exc
                if on_chunk and failure is None:
                    on_chunk(hi - lo)
    finally:
        _INHERITED.pop(token, None)
    if failure is not None:
        if cleanup:
            cleanup(results)
        raise failure
    return results
