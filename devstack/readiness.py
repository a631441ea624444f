"""Readiness probes and the wait loop that turns "not ready" into a clear failure.

Probes use only the standard library (urllib + ssl) so that `up` stays fast
and importing devstack never drags in the kubernetes client.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import processes
from .processes import ProcessRecord


class ComponentFailed(Exception):
    """A stack part did not start; carries the part's name and its log tail."""

    def __init__(self, component: str, reason: str, log: str | None = None) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log = log

    def report(self, lines: int = 30) -> str:
        text = f"devstack: {self.component} failed: {self.reason}"
        if self.log:
            text += f"\n--- last lines of {self.log} ---\n{processes.tail(self.log, lines)}"
        return text


def http_get(
    url: str,
    *,
    ca_file: str | Path | None = None,
    client_cert: tuple[str | Path, str | Path] | None = None,
    timeout: float = 2.0,
) -> tuple[int, bytes]:
    """GET a URL; returns (status, body), or (0, b'') when nothing answers."""
    ctx = None
    if url.startswith("https:"):
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if client_cert:
            ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, ssl.SSLError):
        return 0, b""


def etcd_ready(client_port: int) -> bool:
    status, body = http_get(f"http://127.0.0.1:{client_port}/health")
    if status != 200:
        return False
    try:
        return json.loads(body).get("health") == "true"
    except ValueError:
        return False


def apiserver_ready(url: str, ca_file: str, admin: tuple[str, str]) -> bool:
    """/readyz says ok and namespace default exists (RBAC bootstrap has run)."""
    status, body = http_get(f"{url}/readyz", ca_file=ca_file, client_cert=admin)
    if status != 200 or body.strip() != b"ok":
        return False
    status, _ = http_get(f"{url}/api/v1/namespaces/default", ca_file=ca_file, client_cert=admin)
    return status == 200


def kcm_ready(url: str, ca_file: str, admin: tuple[str, str]) -> bool:
    """The serviceaccount controller has created SA `default` in namespace default."""
    status, _ = http_get(
        f"{url}/api/v1/namespaces/default/serviceaccounts/default",
        ca_file=ca_file,
        client_cert=admin,
    )
    return status == 200


def openbao_ready(addr: str) -> bool:
    status, body = http_get(f"{addr}/v1/sys/health")
    if status != 200:
        return False
    try:
        health = json.loads(body)
    except ValueError:
        return False
    return bool(health.get("initialized")) and not health.get("sealed")


def postgres_ready(pg_isready: str, port: int) -> bool:
    result = subprocess.run(
        [pg_isready, "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "1"],
        check=False,
        capture_output=True,
    )
    return result.returncode == 0


def wait_ready(
    rec: ProcessRecord,
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str = "ready",
    interval: float = 0.1,
) -> None:
    """Poll `check` until true; fail fast (with the log) if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        code = processes.exited(rec)
        if code is not None:
            raise ComponentFailed(rec.name, f"exited (code {code}) before it was {what}", rec.log)
        if time.monotonic() > deadline:
            raise ComponentFailed(rec.name, f"not {what} after {timeout:.0f}s", rec.log)
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)
