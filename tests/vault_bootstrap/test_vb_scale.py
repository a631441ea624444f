"""vault-bootstrap at scale against a real OpenBao and the stack's PostgreSQL (issue 17).

An N-app config from bench/vault_scale_gen.py converges with concurrent waves, a re-run makes 0
writes with only reads, the gateway's in-flight meter never exceeds the bound, dependency order
holds on the wire, a real rate-limit quota (`sys/quotas/rate-limit`) is backed off from, and no
secret value reaches the output. OpenBao only: HashiCorp Vault is not available here.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from vb_helpers import ROOT, chapter_env, hvac_client, need_flavor, require, run_cli

sys.path.insert(0, str(ROOT / "bench"))

from vault_scale_gen import app_names, write_all  # noqa: E402

from vault_bootstrap import HvacGateway, load_config, run  # noqa: E402

pytestmark = pytest.mark.stack


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[Any]:
    need_flavor("openbao")
    from devstack.vault_server import dev_server

    server = dev_server("openbao", tmp_path / "openbao")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(stack: Any, bao: Any, dummy_ca: str) -> dict[str, str]:
    require(stack, "postgres")
    return chapter_env(stack, bao, ca_file=dummy_ca)


class SpanGateway(HvacGateway):
    """The real gateway, also recording when each write started and ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spans: dict[str, tuple[float, float]] = {}
        self._spans_lock = threading.Lock()

    def write(self, path: str, body: Mapping[str, Any], *, retry: bool = True) -> Any:
        start = time.monotonic()
        try:
            return super().write(path, body, retry=retry)
        finally:
            with self._spans_lock:
                self.spans[path] = (start, time.monotonic())


def _tokens(out: Path) -> list[str]:
    return [p.read_text().strip() for p in sorted((out / "inputs").glob("*.token"))]


def test_n_apps_converge_in_order_within_bound_then_rerun_only_reads(
    env: dict[str, str], bao: Any, tmp_path: Path, stack: Any
) -> None:
    n, db = 40, 5
    config_path, _ = write_all(n, tmp_path / "gen", db_roles=db)
    config = load_config(str(config_path))

    gw = SpanGateway(bao.addr)
    first = run(config, mode="apply", env=env, gateway=gw, concurrency=4, wait=False)
    assert first.writes >= 4 * n + db  # roles, policies, KV data + metadata, DB roles
    assert 1 < gw.stats.max_in_flight <= 4  # concurrent, and never over the bound
    assert first.api_calls["max_in_flight"] == gw.stats.max_in_flight

    s = gw.spans
    for app in app_names(n):
        role = s[f"auth/kubernetes/role/{app}"]
        assert s["sys/auth/kubernetes"][1] <= role[0]
        assert s["auth/kubernetes/config"][1] <= role[0]
        assert s[f"sys/policies/acl/{app}"][1] <= role[0]
        assert s[f"secret/data/apps/{app}/config"][1] <= s[f"secret/metadata/apps/{app}/config"][0]
    assert s["sys/mounts/database"][1] <= s["database/config/postgres"][0]
    for app in app_names(db):
        assert s["database/config/postgres"][1] <= s[f"database/roles/{app}"][0]
    last_config_write = max(end for p, (_, end) in s.items() if "vault-bootstrap/" not in p)
    assert s["secret/data/vault-bootstrap/scale-state"][0] >= last_config_write

    again = SpanGateway(bao.addr)
    rerun = run(config, mode="apply", env=env, gateway=again, concurrency=4, wait=False)
    assert rerun.writes == 0 and again.spans == {}
    calls = rerun.api_calls
    assert calls["writes"] == 0 and calls["rate_limited"] == 0
    # One read per managed object plus the mount tables, the state entry and the token lookup.
    assert calls["total"] <= 3 * n + db + 2 + 4, calls
    assert 1 < calls["max_in_flight"] <= 4

    client = hvac_client(bao.addr, bao.token)
    meta = client.secrets.kv.v2.read_secret_metadata("apps/app-007/config", mount_point="secret")
    assert meta["data"]["current_version"] == 1  # written once, no version churn
    creds = client.secrets.database.generate_credentials("app-001", mount_point="database")
    client.sys.revoke_lease(creds["lease_id"])


def _set_quota(addr: str, token: str, body: dict[str, Any] | None) -> None:
    """Create (body) or delete (None) the test's global rate-limit quota; its own calls are
    rate-limited too, so retry for a few seconds."""
    import requests

    headers = {"X-Vault-Token": token}
    url = f"{addr}/v1/sys/quotas/rate-limit/vb-scale-test"
    deadline = time.monotonic() + 20
    while True:
        if body is None:
            resp = requests.delete(url, headers=headers, timeout=5)
        else:
            resp = requests.post(url, json=body, headers=headers, timeout=5)
        if resp.status_code in (200, 204) or time.monotonic() > deadline:
            assert resp.status_code in (200, 204), resp.text
            return
        time.sleep(0.5)


def test_rate_limit_quota_backs_off_and_converges(
    env: dict[str, str], bao: Any, tmp_path: Path
) -> None:
    config_path, _ = write_all(12, tmp_path / "gen", db_roles=2)
    config = load_config(str(config_path))
    import requests

    requests.post(
        f"{bao.addr}/v1/sys/quotas/config",
        json={"enable_rate_limit_response_headers": True},
        headers={"X-Vault-Token": bao.token},
        timeout=5,
    ).raise_for_status()
    _set_quota(bao.addr, bao.token, {"rate": 15, "interval": "1s"})
    try:
        gw = HvacGateway(bao.addr, retry_timeout=60)
        result = run(config, mode="apply", env=env, gateway=gw, concurrency=8, wait=False)
        assert result.api_calls["rate_limited"] > 0  # the quota really bit...
        assert result.api_calls["retries"] >= result.api_calls["rate_limited"]  # ...and we retried
    finally:
        _set_quota(bao.addr, bao.token, None)
    check = run(config, mode="plan", env=env, gateway=HvacGateway(bao.addr), wait=False)
    assert not check.plan.has_changes  # converged despite the 429s


def test_cli_reports_api_calls_and_leaks_no_value(env: dict[str, str], tmp_path: Path) -> None:
    out_dir = tmp_path / "gen"
    config_path, _ = write_all(8, out_dir, db_roles=2)
    plan = run_cli("plan", "--json", "--concurrency", "3", "-f", str(config_path), env=env)
    assert plan.code == 2, plan.output
    calls = json.loads(plan.stdout)["api_calls"]
    assert calls["writes"] == 0 and calls["reads"] > 8 and 1 <= calls["max_in_flight"] <= 3

    applied = run_cli("apply", "-v", "--debug", "-f", str(config_path), env=env)
    assert applied.code == 0, applied.output
    assert "vault api calls: " in applied.stderr
    rerun = run_cli("apply", "-v", "--concurrency", "2", "-f", str(config_path), env=env)
    assert "Apply complete: 0 writes." in rerun.stdout
    line = next(x for x in rerun.stderr.splitlines() if "vault api calls: " in x)
    assert "write=" not in line and "max in flight=" in line

    values = [*_tokens(out_dir), env["PGPASSWORD"], env["VAULT_TOKEN"]]
    assert all(len(v) >= 8 for v in values)
    for result in (plan, applied, rerun):
        for value in values:
            assert value not in result.output
