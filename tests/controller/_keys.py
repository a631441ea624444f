"""Shared test keys for controller tests (RSA-2048 for speed; generated once per session)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from controller.keyring import KeyEntry, entry_from_secret
from sealkit.keys import generate_key_and_cert, key_secret_manifest


def make_entry(name: str, *, age_days: int = 0, bits: int = 2048) -> KeyEntry:
    key, cert = generate_key_and_cert(bits, now=datetime.now(UTC) - timedelta(days=age_days))
    manifest = key_secret_manifest(key, cert, namespace="kube-system", name=name)
    manifest["metadata"]["creationTimestamp"] = cert.not_valid_before_utc.isoformat()
    return entry_from_secret(manifest)


@functools.cache
def entries(n: int) -> tuple[KeyEntry, ...]:
    """n distinct keys, oldest first (key i is n-i days old)."""
    return tuple(make_entry(f"sealed-secrets-key{i:02d}", age_days=n - i) for i in range(n))
