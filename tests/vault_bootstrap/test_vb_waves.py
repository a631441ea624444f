"""Wave scheduling (pure) and the concurrent executor on a slow in-memory gateway (fakes only).

The real-server side (bound, order, 429 back-off against OpenBao) is in test_vb_scale.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from vault_bootstrap import ApplyError, VaultCallError
from vault_bootstrap._executor import apply_plan
from vault_bootstrap._gateway import CallStats, _retry_after
from vault_bootstrap._model import Change, DesiredObject, Observed, StateRecord, WriteOnly
from vault_bootstrap._planner import make_plan
from vault_bootstrap._redact import Sensitive
from vault_bootstrap._waves import depends, waves
from vault_bootstrap.testing import FakeVaultGateway


def _c(kind: str, path: str, action: str = "create") -> Change:
    return Change(action=action, kind=kind, path=path, source=path)  # type: ignore[arg-type]


def _desired(n: int) -> list[DesiredObject]:
    out = [
        DesiredObject(
            kind="auth_mount", path="sys/auth/kubernetes", source="a", fields={"type": "kubernetes"}
        ),
        DesiredObject(
            kind="secrets_mount",
            path="sys/mounts/database",
            source="s",
            fields={"type": "database"},
        ),
        DesiredObject(
            kind="db_connection",
            path="database/config/pg",
            source="c",
            fields={"plugin_name": "p"},
            write_only={
                "password": WriteOnly(Sensitive("pw-waves"), 1),
                "rotate_root": WriteOnly(None, 0),
            },
        ),
    ]
    for i in range(n):
        out += [
            DesiredObject(
                kind="policy", path=f"sys/policies/acl/app{i}", source="p", fields={"policy": "x\n"}
            ),
            DesiredObject(
                kind="k8s_role",
                path=f"auth/kubernetes/role/app{i}",
                source="r",
                fields={"token_policies": [f"app{i}"]},
            ),
            DesiredObject(
                kind="db_role", path=f"database/roles/app{i}", source="d", fields={"db_name": "pg"}
            ),
            DesiredObject(
                kind="kv",
                path=f"secret/data/app{i}",
                source="k",
                secrets={"t": Sensitive(f"kv-secret-{i}")},
            ),
        ]
    return out


def _plan(n: int) -> Any:
    return make_plan(_desired(n), Observed(), state_mount="secret", state_path="vb/state")


def test_waves_keep_order_and_have_no_dependency_inside() -> None:
    plan = _plan(5)
    ws = waves(plan.changes)
    assert [c for w in ws for c in w] == plan.changes  # every change once, in plan order
    for wave in ws:
        for a in wave:
            for b in wave:
                assert a is b or not depends(a, b)
    kinds_at = {c.kind: i for i, w in enumerate(ws) for c in w}
    assert kinds_at["auth_mount"] < kinds_at["k8s_role"]
    assert kinds_at["policy"] < kinds_at["k8s_role"]
    assert kinds_at["secrets_mount"] < kinds_at["db_connection"] < kinds_at["db_role"]
    assert kinds_at["secrets_mount"] < kinds_at["kv"]
    assert len(ws) <= 5  # 5 apps' 20 objects do not become 20 waves


def test_deletes_run_children_first_and_same_path_splits() -> None:
    changes = [
        _c("k8s_role", "auth/kubernetes/role/a", "delete"),
        _c("policy", "sys/policies/acl/a", "delete"),
        _c("auth_mount", "sys/auth/kubernetes", "delete"),
    ]
    ws = waves(changes)
    # The role goes before its mount and policy, which are independent of each other.
    assert ws == [[changes[0]], [changes[1], changes[2]]]
    assert [len(w) for w in waves([_c("policy", "p/x"), _c("policy", "p/x", "update")])] == [1, 1]
    # A kind the scheduler does not know runs alone (conservative).
    assert [
        len(w) for w in waves([_c("policy", "p/a"), _c("new_kind", "x"), _c("policy", "p/b")])
    ] == [1, 1, 1]


class SlowGateway(FakeVaultGateway):
    """The in-memory gateway, thread-safe, with a delay per write and an in-flight meter."""

    def __init__(self, delay: float = 0.01) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.spans: dict[str, tuple[float, float]] = {}

    def write(self, path: str, body: Mapping[str, Any], *, retry: bool = True) -> Any:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = time.monotonic()
        time.sleep(self.delay)
        try:
            with self.lock:
                return super().write(path, body, retry=retry)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.spans[path] = (start, time.monotonic())


@pytest.mark.parametrize("bound", [1, 3, 8])
def test_concurrent_executor_respects_bound_and_order(bound: int) -> None:
    gw = SlowGateway()
    plan = _plan(12)
    result = apply_plan(gw, plan, old_state=StateRecord(), concurrency=bound)
    assert result.applied == len(plan.changes)
    assert gw.max_in_flight <= bound
    if bound > 1:
        assert gw.max_in_flight > 1  # it really ran concurrently
    s = gw.spans
    for i in range(12):
        assert s["sys/auth/kubernetes"][1] <= s[f"auth/kubernetes/role/app{i}"][0]
        assert s[f"sys/policies/acl/app{i}"][1] <= s[f"auth/kubernetes/role/app{i}"][0]
        assert s["database/config/pg"][1] <= s[f"database/roles/app{i}"][0]
        assert s["sys/mounts/database"][1] <= s["database/config/pg"][0]
    assert s["secret/data/vb/state"][0] >= max(
        end for p, (_, end) in s.items() if p != "secret/data/vb/state"
    )


def test_failure_stops_later_waves_and_records_what_succeeded() -> None:
    gw = SlowGateway()
    plan = _plan(6)
    gw.fail["database/config/pg"] = VaultCallError("database/config/pg: HTTP 400: bad", status=400)
    with pytest.raises(ApplyError, match="database/config/pg"):
        apply_plan(gw, plan, old_state=StateRecord(), concurrency=4)
    written = {p for verb, p, _ in gw.calls if verb == "write"}
    assert not any(p.startswith("database/roles/") for p in written)  # later wave never started
    created = set(gw.store["secret/data/vb/state"]["data"]["created"])
    assert "secrets_mount:sys/mounts/database" in created
    assert "db_connection:database/config/pg" not in created


def test_call_stats_and_retry_after_parsing() -> None:
    stats = CallStats()
    stats.begin("read", retry=False)
    stats.begin("write", retry=False)
    assert stats.in_flight == 2 and stats.max_in_flight == 2
    stats.end(wrote=False, limited=True)
    stats.end(wrote=True, limited=False)
    stats.begin("write", retry=True)
    stats.end(wrote=True, limited=False)
    snap = stats.snapshot()
    assert snap == {
        "total": 3,
        "reads": 1,
        "writes": 2,
        "by_kind": {"read": 1, "write": 2},
        "rate_limited": 1,
        "retries": 1,
        "max_in_flight": 2,
    }
    assert CallStats.describe(snap).startswith("vault api calls: 3 (read=1, write=2); 429s=1")
    assert _retry_after("2") == 2.0
    assert _retry_after("3600") == 30.0  # capped
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert _retry_after("-1") is None and _retry_after(None) is None and _retry_after("nan") is None


def test_concurrency_option_defaults_and_bounds() -> None:
    from vault_bootstrap import ConfigError, parse_config

    base = {"policies": {"a": {"policy": "x"}}}
    assert parse_config(base).connection.concurrency == 8
    assert parse_config({**base, "connection": {"concurrency": 1}}).connection.concurrency == 1
    for bad in (0, 65, "8", True):
        with pytest.raises(ConfigError, match="connection.concurrency"):
            parse_config({**base, "connection": {"concurrency": bad}})


def test_transit_keys_wait_for_their_mount_and_run_together() -> None:
    """Transit keys (issue 16) join the waves: after the mount, beside each other."""
    plan = [
        _c("secrets_mount", "sys/mounts/transit"),
        _c("transit_key", "transit/keys/a"),
        _c("transit_key", "transit/keys/b"),
    ]
    assert depends(plan[1], plan[0])
    assert not depends(plan[2], plan[1])
    assert [[c.path for c in w] for w in waves(plan)] == [
        ["sys/mounts/transit"],
        ["transit/keys/a", "transit/keys/b"],
    ]
