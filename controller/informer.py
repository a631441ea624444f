"""A list+watch informer (client-go's reflector + store) on the official client.

Why our own: the client's `SharedInformer` reads `resp.items` with `getattr` and so breaks on
`CustomObjectsApi`'s dicts, and `Watch.stream` hides 410s behind one silent retry. This loop:

1. LISTs (paged) and replaces the cache, emitting `deleted` for objects that vanished while we
   were not watching (the "delete diffing" after a 410 re-list) and `added`/`updated` for the
   rest;
2. WATCHes from the list's resourceVersion with bookmarks, a server timeout (300-600 s, random)
   and a client `_request_timeout`, so a dead connection cannot hang us;
3. on a normal end of the watch, re-watches from the last resourceVersion seen (bookmarks
   included); on 410 Gone (or an in-stream 410 ERROR) re-lists; on any other error sleeps a
   jittered backoff (0.8 s doubling to 30 s) and re-watches, re-listing if that fails too.

Handlers run on the informer thread and must only enqueue keys. The cache holds slimmed dicts
(no `managedFields`) behind a lock; readers get the stored object and must not mutate it.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controller.kube_gateway import ApiError
from controller.kube_http import iter_lines

__all__ = [
    "Handlers",
    "Informer",
    "ListWatch",
    "RawListWatch",
    "compact",
    "object_key",
    "slim_object",
]

_LOG = logging.getLogger(__name__)


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class ListWatch(Protocol):
    """The two calls a reflector needs, on one resource collection."""

    def list(self, *, limit: int, continue_: str | None) -> dict[str, Any]: ...

    def watch(self, *, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]: ...


class RawListWatch:
    """`ListWatch` for a collection path (e.g. `/api/v1/namespaces/x/secrets`)."""

    def __init__(
        self, gateway: Any, path: str, *, label_selector: str = "", field_selector: str = ""
    ) -> None:
        self.gw = gateway
        self.path = path
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._lock = threading.Lock()
        self._resp: Any = None

    def _selectors(self) -> list[tuple[str, Any]]:
        q: list[tuple[str, Any]] = []
        if self.label_selector:
            q.append(("labelSelector", self.label_selector))
        if self.field_selector:
            q.append(("fieldSelector", self.field_selector))
        return q

    def list(self, *, limit: int, continue_: str | None) -> dict[str, Any]:
        q = self._selectors() + [("limit", limit)]
        if continue_:
            q.append(("continue", continue_))
        return self.gw.request("GET", self.path, query=q, limit=False)

    def watch(self, *, resource_version: str, timeout_seconds: int) -> Iterator[dict[str, Any]]:
        q = self._selectors() + [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_seconds),
        ]
        # Read timeout: longer than the server-side timeout, so only a dead link trips it.
        resp = self.gw.request(
            "GET", self.path, query=q, stream=True, limit=False, timeout=(10, timeout_seconds + 30)
        )
        with self._lock:
            self._resp = resp
        try:
            for line in iter_lines(resp):
                if line:
                    yield json.loads(line)
        finally:
            with self._lock:
                self._resp = None
            resp.release_conn()

    def abort(self) -> None:
        """Unblock a watch in progress (used by `Informer.stop()`)."""
        with self._lock:
            resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - best effort on an already broken stream
                try:
                    resp.close()
                except Exception:  # noqa: BLE001
                    pass


@dataclass
class Handlers:
    on_add: Callable[[dict[str, Any]], None] | None = None
    on_update: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    on_delete: Callable[[dict[str, Any]], None] | None = None


class _Gone(Exception):
    pass


def compact(value: Any) -> Any:
    """Intern dict keys and short strings: thousands of cached objects share them."""
    if isinstance(value, dict):
        return {sys.intern(k): compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    if isinstance(value, str) and len(value) <= 64:
        return sys.intern(value)
    return value


_LAST_APPLIED = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
)


def slim_object(obj: dict[str, Any]) -> dict[str, Any]:
    """Cache form of a SealedSecret: no managedFields and no last-applied copy of itself
    (`kubectl apply` doubles every object with that annotation; nothing here reads it)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for key in _LAST_APPLIED:
                annotations.pop(key, None)
    return compact(obj)


class Informer:
    """Keeps a cache of one collection in sync and calls handlers on changes."""

    def __init__(
        self,
        lw: ListWatch,
        handlers: Handlers | None = None,
        *,
        name: str = "informer",
        page_size: int = 500,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        backoff_initial: float = 0.8,
        backoff_max: float = 30.0,
        watch_timeout: tuple[int, int] = (300, 600),
    ) -> None:
        self.lw = lw
        self.handlers = handlers or Handlers()
        self.name = name
        self.page_size = page_size
        self.transform = transform or slim_object
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.synced = threading.Event()
        self._rv = ""
        self._backoff = (backoff_initial, backoff_max)
        self._watch_timeout = watch_timeout
        self._thread: threading.Thread | None = None
        self.relists = 0

    # -- cache --------------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._cache.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    @property
    def resource_version(self) -> str:
        return self._rv

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        thread.start()
        self._thread = thread  # once started: the supervisor counts unstarted as dead
        return thread

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        abort = getattr(self.lw, "abort", None)
        if abort is not None:
            abort()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self.synced.wait(timeout)

    def run(self) -> None:
        delay = self._backoff[0]
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                self._watch_once()
                delay = self._backoff[0]
            except _Gone:
                _LOG.info("%s: resourceVersion too old, re-listing", self.name)
                need_list = True
            except Exception as exc:  # noqa: BLE001 - the loop must survive any error
                if self._stop.is_set():
                    break
                msg = exc.message if isinstance(exc, ApiError) else type(exc).__name__
                _LOG.warning("%s: list/watch failed (%s); retrying in %.1fs", self.name, msg, delay)
                if isinstance(exc, ApiError) and exc.status == 410:
                    need_list = True
                self._stop.wait(delay * random.uniform(1.0, 1.5))
                delay = min(self._backoff[1], delay * 2)
                if not self._rv:
                    need_list = True

    # -- internals --------------------------------------------------------------------------
    def _relist(self) -> None:
        items: dict[str, dict[str, Any]] = {}
        cont: str | None = None
        while True:
            page = self.lw.list(limit=self.page_size, continue_=cont)
            for item in page.get("items") or []:
                item = self.transform(item)
                items[object_key(item)] = item
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or None
            if not cont:
                rv = str(meta.get("resourceVersion") or "")
                break
        with self._lock:
            old = self._cache
            self._cache = items
            self._rv = rv
            self.relists += 1
        for key, obj in old.items():
            if key not in items:
                self._call(self.handlers.on_delete, obj)
        for key, obj in items.items():
            prev = old.get(key)
            if prev is None:
                self._call(self.handlers.on_add, obj)
            elif (prev.get("metadata") or {}).get("resourceVersion") != (
                obj.get("metadata") or {}
            ).get("resourceVersion"):
                self._call(self.handlers.on_update, prev, obj)
        self.synced.set()

    def _watch_once(self) -> None:
        timeout = random.randint(*self._watch_timeout)
        try:
            events = self.lw.watch(resource_version=self._rv, timeout_seconds=timeout)
            for event in events:
                if self._stop.is_set():
                    return
                self._handle(event)
        except ApiError as exc:
            if exc.status == 410:
                raise _Gone() from None
            raise

    def _handle(self, event: Mapping[str, Any]) -> None:
        etype = event.get("type")
        obj = event.get("object") or {}
        if etype == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise ApiError(f"watch error: {obj.get('message')}", int(obj.get("code") or 0))
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if etype == "BOOKMARK":
            if rv:
                self._rv = rv
            return
        obj = self.transform(dict(obj))
        key = object_key(obj)
        with self._lock:
            prev = self._cache.get(key)
            if etype == "DELETED":
                self._cache.pop(key, None)
            else:
                self._cache[key] = obj
            if rv:
                self._rv = rv
        if etype == "ADDED":
            if prev is None:
                self._call(self.handlers.on_add, obj)
            else:
                self._call(self.handlers.on_update, prev, obj)
        elif etype == "MODIFIED":
            if prev is None:
                self._call(self.handlers.on_add, obj)
            else:
                self._call(self.handlers.on_update, prev, obj)
        elif etype == "DELETED":
            self._call(self.handlers.on_delete, prev or obj)

    def _call(self, fn: Callable[..., None] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a handler bug must not kill the informer
            _LOG.exception("%s: event handler failed", self.name)
