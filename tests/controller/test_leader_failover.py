"""Two real `sealkit-controller` processes on the real apiserver: HA as a user would see it.

- both replicas serve `/healthz` and `/v1/cert.pem` (readiness never depends on leadership);
- SIGKILL the leader: the other takes the Lease within the lease time (15 s + one retry);
- SIGTERM the leader: it releases the Lease, the other takes over at once, and it exits 0.

Each controller watches only its own (per-test) namespace and keeps its keys there, so test
runs sharing the apiserver never see each other.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.leader import DEFAULT_LEASE_NAME

pytestmark = [
    pytest.mark.stack,
    pytest.mark.slow,
]

LEASE_DURATION = 15.0
RETRY = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, name: str, namespace: str, kubeconfig: str, log_dir: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.metrics_port = _free_port()
        env = {**os.environ, "POD_NAME": name, "POD_NAMESPACE": namespace}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.main",
                "--kubeconfig",
                kubeconfig,
                "--all-namespaces=false",
                "--key-size",
                "2048",
                "--listen-addr",
                f"127.0.0.1:{self.port}",
                "--listen-metrics-addr",
                f"127.0.0.1:{self.metrics_port}",
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str, metrics: bool = False) -> tuple[int, bytes]:
        port = self.metrics_port if metrics else self.port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def replicas(
    stack: Any, kube_api: Any, namespace: str, tmp_path: Path
) -> Iterator[Callable[[str], Replica]]:
    started: list[Replica] = []

    def start(name: str) -> Replica:
        r = Replica(name, namespace, stack.kubeconfig, tmp_path)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def _holder(kube_api: Any, namespace: str) -> str:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        resp = client.CoordinationV1Api(kube_api).read_namespaced_lease(
            DEFAULT_LEASE_NAME, namespace, _preload_content=False
        )
    except ApiException as err:
        if err.status == 404:
            return ""
        raise
    return str(json.loads(resp.data)["spec"].get("holderIdentity") or "")


def _wait(cond: Callable[[], Any], timeout: float, what: str, logs: Callable[[], str]) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s\n{logs()}")


def _owner(holder: str, reps: list[Replica]) -> Replica | None:
    for r in reps:
        if holder.startswith(r.name + "_") or holder == r.name:
            return r
    return None


def test_sigkill_then_sigterm_failover(
    replicas: Callable[[str], Replica], kube_api: Any, namespace: str
) -> None:
    a, b = replicas("replica-a"), replicas("replica-b")
    reps = [a, b]

    def logs() -> str:
        return "\n".join(f"--- {r.name}\n{r.log()}" for r in reps)

    _wait(lambda: _owner(_holder(kube_api, namespace), reps) is not None, 60, "a leader", logs)
    leader = _owner(_holder(kube_api, namespace), reps)
    assert leader is not None
    standby = b if leader is a else a
    # Both serve the API and the (leader-generated) certificate, and both become ready.
    for r in reps:
        _wait(lambda r=r: r.get("/v1/cert.pem")[0] == 200, 60, f"{r.name} cert", logs)
        _wait(lambda r=r: r.get("/readyz")[0] == 200, 60, f"{r.name} ready", logs)
        assert r.get("/healthz") == (200, b"ok\n")
    assert a.get("/v1/cert.pem")[1] == b.get("/v1/cert.pem")[1]
    gauge = f'leader_election_master_status{{name="{DEFAULT_LEASE_NAME}"}}'
    _wait(
        lambda: f"{gauge} 1.0" in leader.get("/metrics", metrics=True)[1].decode(),
        10,
        "leader gauge 1",
        logs,
    )
    assert f"{gauge} 0.0" in standby.get("/metrics", metrics=True)[1].decode()

    # SIGKILL: nothing is released; the standby waits out the lease.
    os.killpg(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait(10)
    took = _wait(
        lambda: _owner(_holder(kube_api, namespace), reps) is standby,
        LEASE_DURATION + 3 * RETRY + 5,
        "takeover after SIGKILL",
        logs,
    )
    assert took <= LEASE_DURATION + 2 * RETRY * 1.2 + 1.5, took
    print(f"takeover after SIGKILL: {took:.1f}s")

    # A fresh replica joins as standby; SIGTERM the leader: released, immediate takeover.
    c = replicas("replica-c")
    reps.append(c)
    _wait(lambda: c.get("/readyz")[0] == 200, 60, "replica-c ready", logs)
    time.sleep(RETRY * 1.5)  # c has observed the Lease at least once
    assert _owner(_holder(kube_api, namespace), reps) is standby
    standby.proc.send_signal(signal.SIGTERM)
    took = _wait(
        lambda: _owner(_holder(kube_api, namespace), reps) is c,
        3 * RETRY + 3,
        "takeover after SIGTERM",
        logs,
    )
    assert took < LEASE_DURATION / 2, took
    print(f"takeover after SIGTERM: {took:.1f}s")
    assert standby.proc.wait(30) == 0, logs()
