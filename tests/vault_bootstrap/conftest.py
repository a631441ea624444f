"""Fixtures for vault_bootstrap's integration tests (helpers: vb_helpers.py).

Every test gets its OWN server (devstack's private dev server, or a persistent-storage server for
init/unseal and restart faults), never the stack's shared one: the E2E demo applies the same
chapter config there, and fault tests restart servers.

Every server-facing test runs once per flavour: `[openbao]` and `[vault]` (HashiCorp Vault), via
the `flavor` fixture. `SEALKIT_VAULT=openbao|vault` deselects the other flavour (a skip that says
so); a selected flavour whose binary is missing skips, or fails under CI.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vb_helpers import FileBao, need_flavor


@pytest.fixture(params=["openbao", "vault"])
def flavor(request: pytest.FixtureRequest) -> str:
    """The server flavour of this test run: `openbao` or `vault` (HashiCorp Vault)."""
    return need_flavor(request.param)


@pytest.fixture
def private_bao(tmp_path: Path, flavor: str) -> Iterator[Any]:
    """A private dev server (in-memory) of this run's flavour, for one test."""
    from devstack.vault_server import dev_server

    server = dev_server(flavor, tmp_path / flavor)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def file_bao(tmp_path: Path, flavor: str) -> Iterator[FileBao]:
    """A production-like server (persistent storage, uninitialised) of this run's flavour."""
    from devstack import ports

    server = FileBao(tmp_path / "filebao", ports.free_port(), flavor=flavor)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dummy_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA file for configs that never reach an apiserver (kubernetes auth config only)."""

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vb-test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)
