"""Supervision of the controller's long-running threads.

Why: a thread that dies (the key manager on an unexpected exception, an informer, the HTTP
loop) used to leave the process running with ``/healthz`` green but, say, no certificate to
serve (issue 12). Now any exception that escapes a thread is recorded through
``threading.excepthook``, and threads that must be alive are polled; either way the thread
counts as dead: ``/healthz`` and ``/readyz`` answer 503 and ``main`` ends the process (exit 1),
so the kubelet or the operator restarts it instead of a silent zombie serving nothing.

Example::

    sup = Supervisor()
    sup.install()
    sup.watch("key-manager", lambda: manager_thread_alive_or_not_needed())
    if not sup.healthy(): ...      # also sets sup.died
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Supervisor"]

_LOG = logging.getLogger("controller.supervisor")


class Supervisor:
    def __init__(self) -> None:
        self.died = threading.Event()
        self._dead: dict[str, str] = {}
        self._watched: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()
        self._previous_hook: Any = None

    def install(self) -> None:
        """Route uncaught thread exceptions here (the traceback goes to the debug log)."""
        self._previous_hook = threading.excepthook
        threading.excepthook = self._hook

    def uninstall(self) -> None:
        if self._previous_hook is not None:
            threading.excepthook = self._previous_hook
            self._previous_hook = None

    def _hook(self, args: Any) -> None:
        name = args.thread.name if args.thread is not None else "?"
        self.record(name, args.exc_type.__name__ if args.exc_type else "exit")
        _LOG.debug(
            "thread %s died", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
        )

    def record(self, name: str, why: str) -> None:
        with self._lock:
            if name in self._dead:
                return
            self._dead[name] = why
        _LOG.error("thread %s died (%s): failing health checks", name, why)
        self.died.set()

    def watch(self, name: str, alive: Callable[[], bool]) -> None:
        """``alive()`` is polled by `healthy`; it returns True when all is well (including
        "not running, and not meant to be")."""
        with self._lock:
            self._watched[name] = alive

    def dead(self) -> dict[str, str]:
        with self._lock:
            watched = list(self._watched.items())
        for name, alive in watched:
            try:
                ok = alive()
            except Exception as exc:  # noqa: BLE001 - a broken probe is a failed probe
                ok = False
                _LOG.debug("liveness probe of %s failed: %s", name, type(exc).__name__)
            if not ok:
                self.record(name, "not running")
        with self._lock:
            return dict(self._dead)

    def healthy(self) -> bool:
        return not self.dead()
