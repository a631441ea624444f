"""A long-running thread that dies fails /healthz and /readyz and ends the process (issue 12).

On the real apiserver: an in-process controller whose key manager hits an unexpected
exception (injected into its key generation) while leading.
"""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any

import pytest
from _ctl import ensure_crd, running_controller, temp_namespace, wait_for

from controller.supervisor import Supervisor

pytestmark = pytest.mark.stack


def _status(url: str, path: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_key_manager_death_fails_probes_and_ends_the_process(
    kube_api: Any, stack: Any, namespace: str
) -> None:
    ensure_crd(kube_api)
    with (
        temp_namespace(kube_api, "t-sup-k") as keys,
        running_controller(stack.kubeconfig, keys, [namespace]) as app,
    ):
        wait_for(app.ready, 30, "ready")
        assert _status(app.api.url, "/healthz") == 200
        assert _status(app.api.url, "/readyz") == 200

        # A transient key error (Vault transit down, backup pending: RuntimeError subclasses,
        # or an ApiError) is retried with backoff: the thread lives and the probes stay 200.
        calls: list[str] = []

        def transient(*_a: Any, **_k: Any) -> None:
            calls.append("transient")
            raise RuntimeError("injected: Vault unreachable")

        app.keys.generate = transient
        app.keys.force()
        wait_for(lambda: len(calls) >= 2, 15, "the transient key error retried")
        assert app.supervisor.healthy(), app.supervisor.dead()
        assert _status(app.api.url, "/healthz") == 200

        def broken(*_a: Any, **_k: Any) -> None:
            calls.append("bug")
            raise AttributeError("injected: key loading bug")

        app.keys.generate = broken
        app.keys.force()  # the key-manager thread now dies on an unexpected exception
        wait_for(lambda: not app.supervisor.healthy(), 15, "the death noticed")
        assert "key-manager" in app.supervisor.dead()
        assert _status(app.api.url, "/healthz") == 503
        assert _status(app.api.url, "/readyz") == 503
        started = time.monotonic()
        result: list[int] = []
        waiter = threading.Thread(target=lambda: result.append(app.wait()))
        waiter.start()
        waiter.join(30)
        assert result == [1] and time.monotonic() - started < 30


def test_supervisor_sees_uncaught_exceptions_and_stopped_threads() -> None:
    sup = Supervisor()
    sup.install()
    try:
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait, name="loop", daemon=True)
        worker.start()
        sup.watch("loop", worker.is_alive)
        assert sup.healthy()

        def crash() -> None:
            raise ValueError("boom")

        t = threading.Thread(target=crash, name="crasher")
        t.start()
        t.join()
        assert sup.died.is_set() and sup.dead() == {"crasher": "ValueError"}
        stop.set()
        worker.join()
        assert sup.dead()["loop"] == "not running"
    finally:
        sup.uninstall()
