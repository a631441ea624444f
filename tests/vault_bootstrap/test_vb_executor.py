"""The executor and phases on the in-memory gateway: order, counting, failures, no retries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault_bootstrap import ApplyError, InitError, NotReadyError, VaultCallError
from vault_bootstrap._executor import apply_plan
from vault_bootstrap._gateway import Health
from vault_bootstrap._model import DesiredObject, Observed, StateRecord, WriteOnly
from vault_bootstrap._phases import init_and_unseal, wait_for_vault
from vault_bootstrap._planner import make_plan
from vault_bootstrap._redact import Sensitive
from vault_bootstrap.testing import FakeVaultGateway


def _desired() -> list[DesiredObject]:
    # Deliberately listed out of dependency order.
    return [
        DesiredObject(
            kind="kv",
            path="secret/data/app",
            source="kv.secret/app",
            secrets={"k": Sensitive("kv-value-for-executor")},
        ),
        DesiredObject(
            kind="db_role",
            path="database/roles/app",
            source="r",
            fields={"db_name": "pg", "creation_statements": ["X"]},
        ),
        DesiredObject(
            kind="db_connection",
            path="database/config/pg",
            source="c",
            fields={"plugin_name": "postgresql-database-plugin"},
            write_only={
                "password": WriteOnly(Sensitive("pw-for-executor"), 1),
                "rotate_root": WriteOnly(None, 1),
            },
        ),
        DesiredObject(
            kind="secrets_mount",
            path="sys/mounts/database",
            source="s",
            fields={"type": "database"},
        ),
        DesiredObject(
            kind="policy", path="sys/policies/acl/app", source="p", fields={"policy": "x\n"}
        ),
    ]


def _plan():
    return make_plan(_desired(), Observed(), state_mount="secret", state_path="vb/state")


def test_applies_in_dependency_order_and_counts_writes() -> None:
    gw = FakeVaultGateway()
    result = apply_plan(gw, _plan(), old_state=StateRecord())
    writes = [(p, r) for verb, p, r in gw.calls if verb == "write"]
    assert [p for p, _ in writes] == [
        "sys/policies/acl/app",
        "sys/mounts/database",
        "database/config/pg",
        "database/rotate-root/pg",
        "database/roles/app",
        "secret/data/app",
        "secret/metadata/app",
        "secret/data/vb/state",
    ]
    assert dict(writes)["database/rotate-root/pg"] is False  # never retried blindly
    assert result.writes == gw.writes == 8
    assert gw.store["database/config/pg"]["password"] == "pw-for-executor"  # revealed at the wire
    state = gw.store["secret/data/vb/state"]["data"]
    assert "db_connection:database/config/pg" in state["created"]
    assert state["versions"] == {
        "database/config/pg#password": 1,
        "database/config/pg#rotate_root": 1,
    }


def test_failure_records_partial_state_and_names_the_field() -> None:
    gw = FakeVaultGateway()
    gw.fail["database/roles/app"] = VaultCallError("database/roles/app: HTTP 500: boom", status=500)
    with pytest.raises(ApplyError, match=r"^r: create database/roles/app failed: .*HTTP 500"):
        apply_plan(gw, _plan(), old_state=StateRecord())
    state = gw.store["secret/data/vb/state"]["data"]
    assert "db_connection:database/config/pg" in state["created"]
    assert "db_role:database/roles/app" not in state["created"]


def test_mount_already_enabled_by_an_earlier_attempt_counts_as_done() -> None:
    gw = FakeVaultGateway()
    gw.secrets_mounts["database/"] = {"type": "database"}
    plan = make_plan(_desired()[3:4], Observed(), state_mount="secret", state_path="vb/state")
    apply_plan(gw, plan, old_state=StateRecord())  # no error
    gw2 = FakeVaultGateway()
    gw2.secrets_mounts["database/"] = {"type": "kv"}
    with pytest.raises(ApplyError, match="already in use"):
        apply_plan(gw2, plan, old_state=StateRecord())


def test_wait_polls_with_backoff_until_deadline() -> None:
    class Down(FakeVaultGateway):
        def health(self) -> Health:
            self.calls.append(("health", "sys/health", True))
            return Health(status=0, detail="ConnectionError")

    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    gw = Down()
    with pytest.raises(
        NotReadyError, match=r"not ready after 30s: unreachable \(ConnectionError\)"
    ):
        wait_for_vault(gw, timeout=30, sleep=sleep, clock=lambda: now[0])
    assert 5 <= len(sleeps) <= 40 and max(sleeps) <= 7.5
    sealed = FakeVaultGateway(health=Health(status=503, initialized=True, sealed=True))
    assert wait_for_vault(sealed, timeout=1, accept_uninitialised=True, sleep=sleep).status == 503


def test_init_once_keys_to_store_then_unseal(tmp_path: Path) -> None:
    from vault_bootstrap._config import Init, KeyStore
    from vault_bootstrap._phases import KeyStoreIO
    from vault_bootstrap._refs import Resolver

    init = Init(secret_shares=2, secret_threshold=2, key_store=KeyStore(file=str(tmp_path / "k")))
    store = KeyStoreIO(init, Resolver({}))
    gw = FakeVaultGateway(health=Health(status=501, initialized=False, sealed=True))
    init_and_unseal(gw, store, gw.health(), init)
    assert [c[0] for c in gw.calls].count("init") == 1
    assert ("init", "sys/init", False) in gw.calls
    assert json.loads((tmp_path / "k").read_text())["root_token"] == "fake-root-token"
    fresh = FakeVaultGateway(health=Health(status=501, initialized=False, sealed=True))
    with pytest.raises(InitError, match="refusing to overwrite"):
        init_and_unseal(fresh, store, fresh.health(), init)
    assert not any(c[0] == "init" for c in fresh.calls)


def test_retry_classification() -> None:
    import hvac.exceptions as hx
    import requests

    from vault_bootstrap._gateway import is_retryable

    upgrading = hx.InvalidRequest(
        errors=[
            "Upgrading from non-versioned to versioned data. This backend will be "
            "unavailable for a brief period and will resume service shortly."
        ]
    )
    for exc in (
        requests.exceptions.ConnectionError(),
        requests.exceptions.Timeout(),
        hx.InternalServerError(),
        hx.BadGateway(),
        hx.VaultDown(),
        hx.RateLimitExceeded(),
        upgrading,
    ):
        assert is_retryable(exc), exc
    for exc in (
        hx.InvalidRequest(errors=["bad field"]),
        hx.Forbidden(),
        hx.InvalidPath(),
        hx.Unauthorized(),
        hx.UnexpectedError(),
        ValueError(),
    ):
        assert not is_retryable(exc), exc


def test_retryable_failure_is_retried_then_succeeds() -> None:
    import requests

    from vault_bootstrap._gateway import HvacGateway

    gw = HvacGateway("http://127.0.0.1:1", retry_timeout=5)
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise requests.exceptions.ConnectionError("refused")
        return "ok"

    assert gw._call("x", flaky) == "ok" and len(attempts) == 3
    attempts.clear()
    with pytest.raises(VaultCallError, match="cannot reach"):
        gw._call("x", flaky, retry=False)
    assert len(attempts) == 1
