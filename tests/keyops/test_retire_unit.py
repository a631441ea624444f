"""Pure decisions of `keys retire`/`restore`: key selection, newest key, leader-only metrics,
relabelling that never drops the Secret's data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sealkit._exceptions import InputError
from sealkit.keyops._retire import (
    RETIRED,
    RETIRED_AT,
    key_usage_from_metrics,
    newest_active,
    relabel,
    select_key,
)
from sealkit.keys import fingerprint, generate_key_and_cert, key_secret_manifest


def secret(days: int, name: str, label: str = "active") -> tuple[dict[str, Any], str]:
    key, cert = generate_key_and_cert(2048, now=datetime.now(UTC) - timedelta(days=days))
    s = key_secret_manifest(key, cert, name=name)
    s["metadata"]["labels"]["sealedsecrets.bitnami.com/sealed-secrets-key"] = label
    return s, fingerprint(key.public_key())


@pytest.fixture(scope="module")
def keys() -> list[tuple[dict[str, Any], str]]:
    return [
        secret(30, "k-old"),
        secret(1, "k-new"),
        secret(60, "k-bad", "compromised"),
        secret(90, "k-ret", RETIRED),
    ]


def test_select_and_newest(keys: list[tuple[dict[str, Any], str]]) -> None:
    secrets = [s for s, _ in keys]
    assert select_key(secrets, keys[0][1], label="active") is secrets[0]
    assert newest_active(secrets) == keys[1][1]
    with pytest.raises(InputError, match="no key Secret"):
        select_key(secrets, "SHA256:nope", label="active")
    with pytest.raises(InputError, match="is not labelled retired"):
        select_key(secrets, keys[2][1], label=RETIRED)  # compromised is never restored


def test_usage_only_from_the_leader() -> None:
    fp = "SHA256:abc+/d"
    text = (
        f'sealkit_key_sealedsecrets{{fingerprint="{fp}"}} 3.0\n'
        'sealkit_key_sealedsecrets{fingerprint="SHA256:x"} 0.0\n'
    )
    assert key_usage_from_metrics(text, fp) == 3
    assert key_usage_from_metrics(text, "SHA256:unloaded") == 0
    lead = 'leader_election_master_status{name="sealed-secrets-controller"} 1.0\n'
    assert key_usage_from_metrics(lead + text, fp) == 3
    with pytest.raises(InputError, match="not the leader"):
        key_usage_from_metrics(lead.replace("1.0", "0.0") + text, fp)


def test_relabel_round_trip(keys: list[tuple[dict[str, Any], str]]) -> None:
    s = keys[0][0]
    retired = relabel(s, RETIRED, now=datetime(2026, 1, 2, tzinfo=UTC))
    labels = retired["metadata"]["labels"]
    assert labels["sealedsecrets.bitnami.com/sealed-secrets-key"] == RETIRED
    assert retired["metadata"]["annotations"][RETIRED_AT] == "2026-01-02T00:00:00Z"
    assert retired["data"] == s["data"] and retired["type"] == s["type"]
    back = relabel(retired, "active")
    assert back["metadata"].get("annotations") is None
    assert back["metadata"]["labels"] == s["metadata"]["labels"]


def test_newest_breaks_a_notbefore_tie_as_the_controller_does() -> None:
    """Two keys made within one second share NotBefore (second granularity): the CLI must
    pick the key the controller's KeyRing serves, by creationTimestamp, then name."""
    from controller.keyring import KeyRing, entry_from_secret

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    made = []
    for name, created in (
        ("sealed-secrets-keyzz", "2026-01-02T03:04:05Z"),
        ("sealed-secrets-keyaa", "2026-01-02T03:04:06Z"),
        ("sealed-secrets-keybb", "2026-01-02T03:04:06Z"),
    ):
        key, cert = generate_key_and_cert(2048, now=now)
        s = key_secret_manifest(key, cert, name=name)
        s["metadata"]["creationTimestamp"] = created
        made.append((s, fingerprint(key.public_key())))
    for order in (made, made[::-1], [made[1], made[0], made[2]]):
        ring = KeyRing()
        for s, _ in order:
            ring.add(entry_from_secret(s))
        served = ring.latest()
        assert served is not None
        assert newest_active([s for s, _ in order]) == served.fingerprint == made[2][1]
