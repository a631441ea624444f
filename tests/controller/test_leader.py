"""Lease election against the real apiserver: one leader, crash takeover, release, step-down.

Timings are shortened (lease 4 s, renew 3 s, retry 0.5 s) to keep the suite quick; the
relationships client-go relies on are the same as with the 15/10/2 defaults, which the
two-process failover test in test_leader_failover.py uses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.leader import LeaseElector
from controller.metrics import Metrics

pytestmark = pytest.mark.stack

LEASE = dict(lease_duration=4.0, renew_deadline=3.0, retry_period=0.5)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def started(self) -> None:
        with self.lock:
            self.events.append(("started", time.monotonic()))

    def stopped(self) -> None:
        with self.lock:
            self.events.append(("stopped", time.monotonic()))

    def kinds(self) -> list[str]:
        with self.lock:
            return [k for k, _ in self.events]


@pytest.fixture(params=["lease-api", "client"])
def coordination(request: pytest.FixtureRequest, kube_api: Any, stack: Any) -> Any:
    """Every test runs on both: the controller's own `LeaseApi` over `KubeHttp` (what
    sealkit-controller uses) and the official client's `CoordinationV1Api`."""
    if request.param == "client":
        from kubernetes import client

        return client.CoordinationV1Api(kube_api)
    from controller.kube_gateway import RealKubeGateway
    from controller.kube_http import KubeHttp
    from controller.leader import LeaseApi

    return LeaseApi(RealKubeGateway(KubeHttp.from_kubeconfig(stack.kubeconfig), qps=0))


@pytest.fixture
def make_elector(coordination: Any, namespace: str) -> Iterator[Callable[..., LeaseElector]]:
    electors: list[LeaseElector] = []

    def make(
        identity: str, rec: Recorder | None = None, api: Any = None, **kw: Any
    ) -> LeaseElector:
        rec = rec or Recorder()
        e = LeaseElector(
            api or coordination,
            namespace=namespace,
            name="test-lease",
            identity=identity,
            on_started_leading=rec.started,
            on_stopped_leading=rec.stopped,
            **{**LEASE, **kw},
        )
        electors.append(e)
        return e

    yield make
    for e in electors:
        e.stop(release=False, timeout=10)


def _wait(cond: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def _lease(coordination: Any, namespace: str) -> dict[str, Any]:
    resp = coordination.read_namespaced_lease("test-lease", namespace, _preload_content=False)
    return json.loads(resp.data)


def test_exactly_one_of_two_leads(
    make_elector: Callable[..., LeaseElector], coordination: Any, namespace: str
) -> None:
    metrics = Metrics()
    a = make_elector("a", status_sink=metrics)
    b = make_elector("b")
    a.start()
    b.start()
    _wait(lambda: a.is_leader or b.is_leader, 5)
    leader, follower = (a, b) if a.is_leader else (b, a)
    # Several lease periods later, still exactly one leader and it is the Lease holder.
    for _ in range(12):
        time.sleep(0.5)
        assert leader.is_leader and not follower.is_leader
    spec = _lease(coordination, namespace)["spec"]
    assert spec["holderIdentity"] == leader.identity
    assert spec["leaseDurationSeconds"] == 4
    assert spec["renewTime"].endswith("Z") and "." in spec["renewTime"]
    expected = 1.0 if leader is a else 0.0
    assert (
        f'leader_election_master_status{{name="test-lease"}} {expected}'
        in metrics.exposition().decode()
    )


def test_crashed_leader_is_replaced_within_the_lease_time(
    make_elector: Callable[..., LeaseElector], coordination: Any, namespace: str
) -> None:
    rec_a, rec_b = Recorder(), Recorder()
    a = make_elector("a", rec_a)
    a.start()
    _wait(lambda: a.is_leader, 5)
    b = make_elector("b", rec_b)
    b.start()
    time.sleep(1.5)  # b is now watching a's renewals
    assert not b.is_leader
    a.stop(release=False)  # a crash: nothing released
    assert rec_a.kinds() == ["started", "stopped"]
    assert _lease(coordination, namespace)["spec"]["holderIdentity"] == "a"
    took = _wait(lambda: b.is_leader, 10)
    # Not before the lease could have expired, and within lease + one (jittered) retry.
    assert 4.0 - 1.5 - 0.6 <= took <= 4.0 + 2 * 0.6 + 0.5, took
    spec = _lease(coordination, namespace)["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


def test_release_on_shutdown_hands_over_at_once(
    make_elector: Callable[..., LeaseElector], coordination: Any, namespace: str
) -> None:
    a = make_elector("a")
    a.start()
    _wait(lambda: a.is_leader, 5)
    b = make_elector("b")
    b.start()
    time.sleep(1.0)
    a.stop()  # default: release
    assert not a.is_leader
    took = _wait(lambda: b.is_leader, 5)
    assert took < 1.5, took  # one retry period, not a lease duration
    spec = _lease(coordination, namespace)["spec"]
    assert spec["holderIdentity"] == "b"


def test_release_leaves_an_empty_holder(
    make_elector: Callable[..., LeaseElector], coordination: Any, namespace: str
) -> None:
    a = make_elector("a")
    a.start()
    _wait(lambda: a.is_leader, 5)
    a.stop()
    spec = _lease(coordination, namespace)["spec"]
    assert spec.get("holderIdentity", "") == ""
    assert spec["leaseDurationSeconds"] == 1


def test_leader_steps_down_when_someone_else_holds_the_lease(
    make_elector: Callable[..., LeaseElector], coordination: Any, namespace: str
) -> None:
    rec = Recorder()
    a = make_elector("a", rec)
    a.start()
    _wait(lambda: a.is_leader, 5)
    lease = _lease(coordination, namespace)
    lease["spec"]["holderIdentity"] = "intruder"
    coordination.replace_namespaced_lease("test-lease", namespace, lease)
    _wait(lambda: not a.is_leader, 3)
    assert rec.kinds() == ["started", "stopped"]
    # The intruder's lease is valid, so a does not grab it back within its lease time.
    time.sleep(2.0)
    assert not a.is_leader


class FlakyApi:
    """The real CoordinationV1Api, until `broken` is set: then every call fails."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.broken = threading.Event()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.broken.is_set():
                raise ConnectionRefusedError("apiserver unreachable (injected)")
            return method(*args, **kwargs)

        return call


def test_leader_steps_down_after_the_renew_deadline(
    make_elector: Callable[..., LeaseElector], coordination: Any
) -> None:
    flaky = FlakyApi(coordination)
    rec_a = Recorder()
    a = make_elector("a", rec_a, api=flaky)
    a.start()
    _wait(lambda: a.is_leader, 5)
    rec_b = Recorder()
    b = make_elector("b", rec_b)
    b.start()
    time.sleep(1.0)
    flaky.broken.set()
    cut = time.monotonic()
    _wait(lambda: not a.is_leader, 6)
    stepped_down = [t for k, t in rec_a.events if k == "stopped"][0] - cut
    _wait(lambda: b.is_leader, 10)
    took_over = [t for k, t in rec_b.events if k == "started"][0] - cut
    # The old leader stopped leading before the new one started: never two leaders.
    assert stepped_down <= 3.0 + 0.6, stepped_down
    assert took_over > stepped_down


def test_timings_must_be_ordered(coordination: Any) -> None:
    with pytest.raises(ValueError):
        LeaseElector(coordination, namespace="x", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaseElector(
            coordination, namespace="x", lease_duration=15, renew_deadline=10, retry_period=9
        )


def test_release_never_clobbers_a_lease_someone_else_took(
    make_elector: Callable[..., LeaseElector], coordination: Any, namespace: str
) -> None:
    # Slow renewals, so the intruder's write lands between two of a's attempts.
    a = make_elector("a", lease_duration=15.0, renew_deadline=10.0, retry_period=5.0)
    a.start()
    _wait(lambda: a.is_leader, 5)
    lease = _lease(coordination, namespace)
    lease["spec"]["holderIdentity"] = "intruder"
    coordination.replace_namespaced_lease("test-lease", namespace, lease)
    assert a.release() is False  # resourceVersion-guarded: 409, nothing written
    assert _lease(coordination, namespace)["spec"]["holderIdentity"] == "intruder"
