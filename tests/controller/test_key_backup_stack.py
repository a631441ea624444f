"""Backup before use on the real apiserver and the real OpenBao: a new key is served only after
its backup was written, read back and compared; until then the previous key is served, the
key Secret stays `pending-backup`, a Warning Event and a log line say why, and
`sealkit_keys_unbacked` counts it. No key material in logs, events or metrics."""

from __future__ import annotations

import base64
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from _ctl import Kube, ensure_crd, running_controller, temp_namespace, wait_for

from controller.key_backup import BACKUP_PENDING
from controller.keyring import KEY_LABEL, fingerprint_of
from sealkit.keys import generate_key_and_cert, key_secret_manifest, load_private_keys

pytestmark = pytest.mark.stack


@pytest.fixture
def kube(kube_api: Any) -> Kube:
    ensure_crd(kube_api)
    return Kube(kube_api)


@pytest.fixture
def keys_ns(kube_api: Any) -> Iterator[str]:
    with temp_namespace(kube_api, "t-kb") as ns:
        yield ns


def cert_pem(app: Any) -> bytes | int:
    try:
        return urllib.request.urlopen(f"{app.api.url}/v1/cert.pem", timeout=5).read()
    except urllib.error.HTTPError as exc:
        return exc.code


def metric(app: Any, name: str) -> str:
    body = urllib.request.urlopen(f"{app.metrics_server.url}/metrics", timeout=5).read().decode()
    return next((ln for ln in body.splitlines() if ln.startswith(name + " ")), "")


def by_label(kube: Kube, ns: str, value: str) -> list[dict[str, Any]]:
    return kube.list_secrets(ns, f"{KEY_LABEL}={value}")


def key_texts(secrets: list[dict[str, Any]]) -> list[str]:
    """Fragments of key material that must never show up anywhere."""
    out = []
    for s in secrets:
        b64 = s["data"]["tls.key"]
        pem = base64.b64decode(b64).decode()
        out += [b64[20:60], pem.splitlines()[1][:40], pem.splitlines()[5][:40]]
    return out


def test_failing_file_target_keeps_serving_previous_key_until_backup_works(
    kube: Kube, stack: Any, keys_ns: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    old_key, old_cert = generate_key_and_cert(2048, now=datetime.now(UTC) - timedelta(days=2))
    kube.create_secret(key_secret_manifest(old_key, old_cert, namespace=keys_ns))
    target = tmp_path / "later" / "keys.yaml"  # missing directory: every write fails
    cutoff = (datetime.now(UTC) - timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    with running_controller(
        stack.kubeconfig,
        keys_ns,
        [keys_ns],
        "--key-cutoff-time",
        cutoff,
        "--key-renew-period",
        "0",
        "--key-backup",
        f"file:{target}",
    ) as app:
        pending = wait_for(lambda: by_label(kube, keys_ns, BACKUP_PENDING), 60, "pending key")
        assert len(pending) == 1
        # the previous key is still the one served and the only one loaded
        served = cert_pem(app)
        assert served == app.keyring.latest().certificate_pem
        assert fingerprint_of(app.keyring.latest().public_key) == fingerprint_of(
            old_key.public_key()
        )
        assert len(app.keyring.entries()) == 1
        wait_for(
            lambda: metric(app, "sealkit_keys_unbacked") == "sealkit_keys_unbacked 2.0",
            30,
            "both keys counted unbacked",
        )
        events = wait_for(
            lambda: [
                e
                for e in kube.events(keys_ns)
                if e["reason"] == "KeyBackupFailed"
                and e["involvedObject"]["name"] == pending[0]["metadata"]["name"]
            ],
            30,
            "Warning event",
        )
        assert events[0]["type"] == "Warning" and "not active yet" in events[0]["message"]
        assert any("not active yet" in r.getMessage() for r in caplog.records)
        # the target recovers: the pending key is backed up, verified, activated and served
        target.parent.mkdir()
        wait_for(lambda: len(app.keyring.entries()) == 2, 90, "activation after recovery")
        new_fp = app.keyring.latest().fingerprint
        assert new_fp != fingerprint_of(old_key.public_key())
        assert cert_pem(app) == app.keyring.latest().certificate_pem
        assert not by_label(kube, keys_ns, BACKUP_PENDING)
        wait_for(
            lambda: metric(app, "sealkit_keys_unbacked") == "sealkit_keys_unbacked 0.0",
            30,
            "gauge back to 0",
        )
        backed = {fingerprint_of(k.public_key()) for k in load_private_keys(target.read_bytes())}
        assert backed == {new_fp, fingerprint_of(old_key.public_key())}
        everything = "\n".join(
            [r.getMessage() for r in caplog.records]
            + [e["message"] for e in kube.events(keys_ns)]
            + [metric(app, "sealkit_keys_unbacked")]
        )
    for needle in key_texts(by_label(kube, keys_ns, "active")):
        assert needle not in everything


def test_secret_target_in_another_namespace(
    kube: Kube, stack: Any, keys_ns: str, kube_api: Any
) -> None:
    with temp_namespace(kube_api, "t-kb-copy") as backup_ns:
        with running_controller(
            stack.kubeconfig, keys_ns, [keys_ns], "--key-backup", f"secret:{backup_ns}"
        ) as app:
            wait_for(app.keyring.has_keys, 60, "first key")
            active = by_label(kube, keys_ns, "active")
            assert len(active) == 1
            copy = kube.get_secret(backup_ns, active[0]["metadata"]["name"])
            assert copy is not None and copy["data"] == active[0]["data"]
            assert KEY_LABEL not in (copy["metadata"].get("labels") or {})
            assert cert_pem(app) == app.keyring.latest().certificate_pem


def test_vault_target_and_vault_down(
    kube: Kube, stack: Any, keys_ns: str, vault_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"sealkit-test/{keys_ns}"
    monkeypatch.setenv("VAULT_ADDR", vault_client.url)
    monkeypatch.setenv("VAULT_TOKEN", vault_client.token)
    with running_controller(
        stack.kubeconfig, keys_ns, [keys_ns], "--key-backup", f"vault:secret/{path}"
    ) as app:
        wait_for(app.keyring.has_keys, 60, "first key")
        entry = app.keyring.latest()
        stored = vault_client.secrets.kv.v2.read_secret_version(
            path=f"{path}/{entry.secret_name}", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]
        active = by_label(kube, keys_ns, "active")[0]
        assert stored["tls.key"] == active["data"]["tls.key"]
        assert stored["namespace"] == keys_ns
    # Vault unreachable: a fresh key namespace gets a pending key and nothing is served
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    with temp_namespace(kube.api, "t-kb-down") as down_ns:
        with running_controller(
            stack.kubeconfig, down_ns, [down_ns], "--key-backup", f"vault:secret/{path}"
        ) as app:
            wait_for(lambda: by_label(kube, down_ns, BACKUP_PENDING), 60, "pending key")
            assert not app.keyring.has_keys()
            assert cert_pem(app) == 500
            ev = wait_for(
                lambda: [e for e in kube.events(down_ns) if e["reason"] == "KeyBackupFailed"],
                30,
                "event",
            )
            assert "vault" in ev[0]["message"]
            assert not yaml.safe_dump(ev[0]).count("PRIVATE KEY")
