"""Backup before use, pure: the gate and the key manager on the in-memory gateway and a file
target (the real-apiserver and real-OpenBao versions are in test_key_backup_stack.py)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from controller.key_backup import (
    BACKUP_PENDING,
    BackupError,
    BackupGate,
    BackupPending,
    FileBackup,
    parse_target,
)
from controller.key_manager import KeyManager, KeyOptions
from controller.keyring import KEY_LABEL, KeyRing
from controller.testing import FakeKubeGateway
from sealkit.keys import load_private_keys

NS = "kube-system"


class Broken:
    description = "broken:test"

    def write(self, secret: Any) -> None:
        raise BackupError("target unreachable")

    def read(self, name: str) -> Any:
        return None


class Lossy(FileBackup):
    """Writes succeed but the read-back differs: must not count as a backup."""

    def read(self, name: str) -> Any:
        got = dict(super().read(name) or {})
        got["tls.key"] = base64.b64encode(b"not the key").decode()
        return got


def manager(gw: FakeKubeGateway, target: Any) -> tuple[KeyManager, BackupGate, KeyRing]:
    ring = KeyRing()
    km = KeyManager(gw, ring, KeyOptions(namespace=NS, bits=2048))
    gate = BackupGate(
        gw,
        target,
        NS,
        registry=CollectorRegistry(),
        loaded=lambda: [e.secret_name for e in ring.entries()],
    )
    km.use_backup(gate)
    return km, gate, ring


def labels(gw: FakeKubeGateway) -> list[str]:
    return sorted(
        (s["metadata"].get("labels") or {}).get(KEY_LABEL, "") for s in gw.secrets.values()
    )


def test_new_key_is_served_only_after_verified_backup(tmp_path: Path) -> None:
    gw = FakeKubeGateway()
    km, gate, ring = manager(gw, FileBackup(str(tmp_path / "keys.yaml")))
    entry = km.generate()
    assert ring.latest() is not None and ring.latest().fingerprint == entry.fingerprint
    assert labels(gw) == ["active"]
    assert gate.unbacked == 0
    # the backup file is a List that --recovery-private-key reads as it is
    keys = load_private_keys((tmp_path / "keys.yaml").read_bytes())
    assert [k.private_numbers() for k in keys] == [entry.private_key.private_numbers()]
    assert (tmp_path / "keys.yaml").stat().st_mode & 0o777 == 0o600
    assert [e["reason"] for e in gw.events] == ["KeyBackedUp"]


@pytest.mark.parametrize("target", ["broken", "lossy"])
def test_failing_backup_never_activates(tmp_path: Path, target: str) -> None:
    gw = FakeKubeGateway()
    tgt = Broken() if target == "broken" else Lossy(str(tmp_path / "k.yaml"))
    km, gate, ring = manager(gw, tgt)
    with pytest.raises(BackupPending):
        km.generate()
    assert not ring.has_keys()  # nothing to serve rather than an unbacked key
    assert labels(gw) == [BACKUP_PENDING]
    assert gate.unbacked == 1
    assert gw.events[-1]["type"] == "Warning" and gw.events[-1]["reason"] == "KeyBackupFailed"
    assert "not active yet" in gw.events[-1]["message"]
    # no second key while one waits, not even when forced: the loop only retries the backup
    km.force()
    km.start_leading()
    time.sleep(1.5)
    km.stop_leading()
    assert len(gw.secrets) == 1 and gate.pending == 1 and not ring.has_keys()


def test_previous_key_is_served_until_backup_recovers(tmp_path: Path) -> None:
    gw = FakeKubeGateway()
    path = tmp_path / "later" / "keys.yaml"  # the directory does not exist yet: writes fail
    km, gate, ring = manager(gw, FileBackup(str(path)))
    gate.target = FileBackup(str(tmp_path / "first.yaml"))
    first = km.generate()
    gate.target = FileBackup(str(path))
    gate._verified.clear()
    with pytest.raises(BackupPending):
        km.generate()
    assert ring.latest().fingerprint == first.fingerprint
    assert gate.unbacked == 2  # the first key has no copy in this target either
    path.parent.mkdir()
    assert gate.sweep() is True
    assert ring.latest().fingerprint != first.fingerprint
    assert labels(gw) == ["active", "active"]
    assert gate.unbacked == 0
    assert b"sealkit_keys_unbacked 0.0" in generate_latest(gate.registry)


def test_no_key_material_in_events_or_errors(tmp_path: Path) -> None:
    gw = FakeKubeGateway()
    km, gate, _ = manager(gw, Lossy(str(tmp_path / "k.yaml")))
    with pytest.raises(BackupPending) as err:
        km.generate()
    secret = next(iter(gw.secrets.values()))
    key_b64 = secret["data"]["tls.key"]
    key_pem = base64.b64decode(key_b64).decode()
    texts = gw.texts() + str(err.value)
    for needle in (key_b64[:40], key_pem.splitlines()[1][:40], "PRIVATE KEY"):
        assert needle not in texts


def test_parse_target_errors_are_one_line() -> None:
    gw = FakeKubeGateway()
    assert isinstance(parse_target("file:/tmp/x", gateway=gw, controller_namespace=NS), FileBackup)
    for bad, msg in [
        ("nope", "must be"),
        ("secret:kube-system", "must differ"),
        ("vault:kv", "vault:<mount>/<path>"),
        ("s3:bucket", "unknown"),
        ("vault:kv/keys", "VAULT_ADDR"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_target(bad, gateway=gw, controller_namespace=NS, env={})
    with pytest.raises(ValueError, match="VAULT_TOKEN"):
        parse_target(
            "vault:kv/keys",
            gateway=gw,
            controller_namespace=NS,
            env={"VAULT_ADDR": "http://127.0.0.1:1"},
        )


def test_secret_target_copy_is_never_loadable(tmp_path: Path) -> None:
    from controller.key_backup import SecretBackup

    gw = FakeKubeGateway()
    km, gate, _ = manager(gw, SecretBackup(gw, "key-backups"))
    km.generate()
    copies = [s for (ns, _), s in gw.secrets.items() if ns == "key-backups"]
    assert len(copies) == 1
    assert KEY_LABEL not in copies[0]["metadata"]["labels"]
    # a second sweep finds nothing to do and rewrites nothing
    writes = len(gw.writes)
    assert gate.sweep() is True and len(gw.writes) == writes
    assert yaml.safe_dump(copies[0])  # plain data, serialisable


def test_keys_made_within_one_second_never_tie() -> None:
    """NotBefore has whole seconds: a key made in the same second as the previous one is
    dated a second later, so the newest key (the one served) is never a coin toss."""
    gw, ring = FakeKubeGateway(), KeyRing()
    km = KeyManager(gw, ring, KeyOptions(namespace=NS, bits=2048))
    made = [km.generate() for _ in range(3)]  # well within a few seconds
    dates = [e.not_before for e in made]
    assert dates == sorted(dates) and len(set(dates)) == 3
    assert ring.latest().fingerprint == made[-1].fingerprint
