"""Stream items through forked workers in small chunks, with a bound on the work in flight.

Why fork: seal-tree's workers need the parent's state (options, the RSA public keys, callables),
which does not pickle. A forked child inherits it instead, so only chunks of small items (paths)
go out and small results come back. The state is explicit: `imap_chunks` calls
``func(state, chunk)`` and keeps ``(func, state)`` in `_INHERITED` under a token only while its
pool runs; nothing else is module-level.

Why stream: a tree of 10,000 files must not cost 10,000 files of memory. Items are pulled from
the caller's iterator lazily, at most ``max_in_flight`` chunks are submitted and not yet handed
back, and results come back chunk by chunk, in order, for the caller to consume and drop. So
the parent holds O(jobs × chunk) items whatever the tree size. Example::

    for chunk in imap_chunks(lambda _, xs: [x * x for x in xs], None, range(500), jobs=4):
        ...
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["CHUNK_SIZE", "MIN_PER_WORKER", "imap_chunks"]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

# Forking costs more than sealing a few files: below this many items per worker, stay in-process.
MIN_PER_WORKER = 50
# Items per submitted chunk: big enough that pickling and queueing are noise, small enough that
# a worker's results (and the parent's window) stay tiny.
CHUNK_SIZE = 16
_INHERITED: dict[int, tuple[Callable[[Any, list[Any]], list[Any]], Any]] = {}
_TOKENS = itertools.count()


def _call(token: int, chunk: list[Any]) -> list[Any]:
    """Worker entry (pickled by name): the inherited function on its inherited state."""
    func, state = _INHERITED[token]
    return func(state, chunk)


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def imap_chunks(
    func: Callable[[S, list[T]], list[R]],
    state: S,
    items: Iterable[T],
    *,
    jobs: int,
    chunk_size: int = CHUNK_SIZE,
    max_in_flight: int | None = None,
    min_per_worker: int | None = None,
    cleanup: Callable[[list[R]], None] | None = None,
) -> Iterator[list[R]]:
    """Yield ``func(state, chunk)`` for consecutive chunks of ``items``, in order.

    Forks up to ``jobs`` workers, and only when the first ``jobs × min_per_worker`` items (default
    `MIN_PER_WORKER`; tests pass a small one) give each worker that many. At most
    ``max_in_flight`` chunks (default 4 per worker) are submitted and not yet yielded. If a chunk
    fails, or the consumer stops early, ``cleanup`` gets the result of every finished chunk that
    was never yielded (so staged files never leak) and the error propagates; chunks already
    yielded are the consumer's to clean up. ``func`` cleans up after itself when it raises.
    """
    source = iter(items)
    threshold = max(1, min_per_worker or MIN_PER_WORKER)
    head = list(itertools.islice(source, jobs * threshold)) if jobs > 1 else []
    workers = jobs if len(head) == jobs * threshold else min(jobs, len(head) // threshold)
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        workers = 1
    chunks = _chunks(itertools.chain(head, source), max(1, chunk_size))
    del head
    if workers <= 1:
        for chunk in chunks:
            yield func(state, chunk)
        return
    yield from _pooled(func, state, chunks, workers, max_in_flight or 4 * workers, cleanup)


def _pooled(
    func: Callable[[S, list[T]], list[R]],
    state: S,
    chunks: Iterator[list[T]],
    workers: int,
    window: int,
    cleanup: Callable[[list[R]], None] | None,
) -> Iterator[list[R]]:
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    for stream in (sys.stdout, sys.stderr):  # a child flushing a copied buffer would repeat it
        stream.flush()
    token = next(_TOKENS)
    _INHERITED[token] = (func, state)
    pending: deque[Future[list[R]]] = deque()
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            try:
                for chunk in chunks:
                    pending.append(pool.submit(_call, token, chunk))
                    while len(pending) >= window:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            except BaseException:
                _drain(pending, cleanup)
                raise
    finally:
        _INHERITED.pop(token, None)


def _drain(pending: deque[Future[list[R]]], cleanup: Callable[[list[R]], None] | None) -> None:
    """Cancel what has not started; hand what finished to ``cleanup``; never raise."""
    for future in pending:
        future.cancel()
    for future in pending:
        if future.cancelled():
            continue
        try:
            result = future.result()
        except BaseException:  # noqa: BLE001, S112 - the first error is the one re-raised
            continue
        if cleanup:
            cleanup(result)
    pending.clear()
