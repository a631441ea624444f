"""Optional post-apply smoke test, run as the application would.

1. ask the apiserver (TokenRequest) for a short-lived token of the named service account;
2. log in to Vault's kubernetes auth with it (a real TokenReview happens server-side);
3. read dynamic database credentials and run a query on PostgreSQL with them (psycopg);
4. read the KV entries the app needs, and check that paths it must not see are refused (403).

The dynamic credential lease is revoked afterwards with the bootstrap token.
"""

from __future__ import annotations

import logging

from ._config import Config, Verify
from ._errors import VerifyError
from ._gateway import HvacGateway, VaultCallError
from ._kube import KubeAccess
from ._redact import Sensitive
from ._refs import Resolver

__all__ = ["run_verify"]

log = logging.getLogger("vault_bootstrap.verify")


def _kv_read_path(path: str) -> str:
    mount, _, rest = path.partition("/")
    return f"{mount}/data/{rest}"


def run_verify(admin: HvacGateway, config: Config, kube: KubeAccess, r: Resolver) -> list[str]:
    v: Verify | None = config.verify
    if v is None:
        return []
    sa = v.service_account
    report: list[str] = []
    try:
        jwt = Sensitive(kube.request_token(sa.namespace, sa.name, audiences=v.audiences))
    except Exception as exc:  # noqa: BLE001
        raise VerifyError(
            f"verify.service_account: TokenRequest for {sa.namespace}/{sa.name} failed: "
            f"{type(exc).__name__}: {getattr(exc, 'reason', '')}"
        ) from None
    app = HvacGateway(admin.address, verify=admin.verify, retry_timeout=10)
    try:
        token = Sensitive(app.login_kubernetes(v.auth_mount, v.role, jwt.reveal()))
    except VaultCallError as exc:
        raise VerifyError(
            f"verify: login as {sa.namespace}/{sa.name} (role {v.role!r}) failed: {exc}"
        ) from None
    app.set_token(token.reveal())
    report.append(f"logged in as {sa.namespace}/{sa.name} via auth/{v.auth_mount}")

    if v.database is not None:
        report.append(_verify_database(admin, app, v, r))
    for path in v.read_kv:
        try:
            data = app.read(_kv_read_path(path))
        except VaultCallError as exc:
            raise VerifyError(f"verify.read_kv: {path}: {exc}") from None
        if data is None:
            raise VerifyError(f"verify.read_kv: {path} does not exist")
        report.append(f"read {path} ({len(data.get('data') or {})} keys)")
    for path in v.denied_kv:
        try:
            app.read(_kv_read_path(path))
        except VaultCallError as exc:
            if exc.status == 403:
                report.append(f"refused {path} (403) as expected")
                continue
            raise VerifyError(f"verify.denied_kv: {path}: expected 403, got {exc}") from None
        raise VerifyError(f"verify.denied_kv: {path} was readable; the policy is too wide")
    for line in report:
        log.info("verify: %s", line)
    return report


def _verify_database(admin: HvacGateway, app: HvacGateway, v: Verify, r: Resolver) -> str:
    import psycopg

    assert v.database is not None
    db = v.database
    path = f"{db.mount}/creds/{db.role}"
    try:
        resp = app._call(path, lambda: app.client.read(path))
    except VaultCallError as exc:
        raise VerifyError(f"verify.database: reading {path} failed: {exc}") from None
    if not isinstance(resp, dict):
        raise VerifyError(f"verify.database: {path} returned nothing")
    lease_id = str(resp.get("lease_id") or "")
    user = str(resp["data"]["username"])
    password = Sensitive(str(resp["data"]["password"]))
    host = r.text(db.host, "verify.database.host")
    port = r.text(db.port, "verify.database.port")
    dbname = r.text(db.dbname, "verify.database.dbname")
    try:
        with psycopg.connect(
            host=host,
            port=port,
            dbname=dbname,
            user=user,
            password=password.reveal(),
            sslmode=db.sslmode,
            connect_timeout=10,
        ) as conn:
            row = conn.execute(db.query).fetchone()  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise VerifyError(
            f"verify.database: connecting to {host}:{port}/{dbname} as the dynamic user failed: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        ) from None
    finally:
        if lease_id:
            try:
                admin.write("sys/leases/revoke", {"lease_id": lease_id})
                admin.writes -= 1  # smoke-test cleanup, not a configuration write
            except VaultCallError as exc:
                log.warning("verify: could not revoke lease: %s", exc)
    return f"dynamic credentials from {path} ran {db.query!r} on {host}:{port}/{dbname} -> {row!r}"
