"""Set-up shared by the vault-bootstrap benches (`vault_bootstrap_bench.py`, `..._scale.py`).

Both time the same two sides (vault-bootstrap and a `bao`/`vault` CLI script) against a private
dev server, with the same environment: a throw-away CA for the kubernetes auth config (it never
reaches an apiserver), a PostgreSQL for the database secrets engine, and VAULT_*/PG* that reach
the CLI and vault-bootstrap alike. Written once here so the two benches cannot drift apart.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path
from typing import Any


def write_ca(path: Path) -> None:
    """A self-signed CA certificate (PEM) at `path`; only its form is checked by the server."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def private_postgres(work: Path, name: str) -> tuple[dict[str, str], Any]:
    """A started private PostgreSQL under `work` and its PG* variables; `.destroy()` it."""
    from devstack.components import PostgresServer

    pg = PostgresServer(work / "pg", name=name)
    pg.start()
    env = {
        "PGHOST": pg.host,
        "PGPORT": str(pg.port),
        "PGUSER": pg.user,
        "PGPASSWORD": pg.password,
        "PGDATABASE": pg.database,
    }
    return env, pg


def cli_env(bao: Any, ca: Path, pg_env: dict[str, str]) -> dict[str, str]:
    """This process's environment without VAULT_*/BAO_*/PG*, then those of the bench's servers.

    VAULT_* reach all three: the vault CLI, the bao CLI (its fallback) and vault-bootstrap.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "PG"))}
    env.update(pg_env)
    env.update(
        BAO=bao.binary,
        VAULT_ADDR=bao.addr,
        VAULT_TOKEN=bao.token,
        KUBE_APISERVER_URL="https://127.0.0.1:6443",
        KUBE_CA_FILE=str(ca),
    )
    return env


def server_version(binary: str) -> str:
    """The first line of `<binary> version` (`?` when it prints nothing)."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True).stdout
    return out.strip().splitlines()[0] if out.strip() else "?"
