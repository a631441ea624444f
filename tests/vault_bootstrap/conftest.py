"""Fixtures for vault_bootstrap's integration tests (helpers: vb_helpers.py).

Every test gets its OWN OpenBao (devstack's private dev server, or a file-storage server for
init/unseal and restart faults), never the stack's shared one: the E2E demo applies the same
chapter config there, and fault tests restart servers.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vb_helpers import FileBao


@pytest.fixture
def private_bao(tmp_path: Path) -> Iterator[Any]:
    """A private OpenBao dev server (in-memory) for one test."""
    from devstack.components import OpenBaoServer

    server = OpenBaoServer(tmp_path / "bao")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def file_bao(tmp_path: Path) -> Iterator[FileBao]:
    from devstack import ports

    server = FileBao(tmp_path / "filebao", ports.free_port())
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
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


