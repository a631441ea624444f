"""Sealing keys on the real apiserver: Bitnami-format key Secrets, legacy key, cutoff, renewal,
BYO keys picked up live, de-activated keys unloaded, per-key usage metric, and real kubeseal
sealing against our `/v1/cert.pem`."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _ctl import Kube, ensure_crd, running_controller, temp_namespace, wait_for

from controller.keyring import KEY_LABEL, fingerprint_of
from sealkit.keys import generate_key_and_cert, key_secret_manifest
from sealkit.model import seal_secret

pytestmark = pytest.mark.stack

VALUE = "byo-known-plaintext-8812"


@pytest.fixture
def kube(kube_api: Any) -> Kube:
    ensure_crd(kube_api)
    return Kube(kube_api)


@pytest.fixture
def spaces(kube_api: Any, namespace: str) -> Iterator[tuple[str, str]]:
    with temp_namespace(kube_api, "t-ctl-k") as keys:
        yield namespace, keys


def sealed_with(public_key: Any, name: str, ns: str) -> dict[str, Any]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"v": VALUE},
    }
    return seal_secret(secret, public_key)


def key_secrets(kube: Kube, ns: str) -> list[dict[str, Any]]:
    return kube.list_secrets(ns, KEY_LABEL)


def value_of(kube: Kube, ns: str, name: str) -> str | None:
    s = kube.get_secret(ns, name)
    return base64.b64decode(s["data"]["v"]).decode() if s else None


def test_bitnami_key_secret_is_used_and_nothing_generated(
    kube: Kube, stack: Any, spaces: tuple[str, str]
) -> None:
    ns, keys = spaces
    key, cert = generate_key_and_cert(2048, now=datetime.now(UTC) - timedelta(days=3))
    kube.create_secret(key_secret_manifest(key, cert, namespace=keys))  # generateName form
    legacy_key, legacy_cert = generate_key_and_cert(2048, now=datetime.now(UTC) - timedelta(days=9))
    legacy = key_secret_manifest(legacy_key, legacy_cert, namespace=keys, name="sealed-secrets-key")
    del legacy["metadata"]["labels"]  # pre-v0.9: loaded by name whatever its labels
    kube.create_secret(legacy)
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        assert [e.fingerprint for e in app.keyring.entries()] == [
            fingerprint_of(legacy_key.public_key()),
            fingerprint_of(key.public_key()),
        ]
        kube.create_sealed(sealed_with(key.public_key(), "by-bitnami-key", ns))
        kube.create_sealed(sealed_with(legacy_key.public_key(), "by-legacy-key", ns))
        wait_for(lambda: value_of(kube, ns, "by-bitnami-key") == VALUE, 30, "unsealed")
        wait_for(lambda: value_of(kube, ns, "by-legacy-key") == VALUE, 30, "legacy unsealed")
        pem = urllib.request.urlopen(f"{app.api.url}/v1/cert.pem", timeout=5).read()
        assert pem == app.keyring.latest().certificate_pem
        assert fingerprint_of(app.keyring.latest().public_key) == fingerprint_of(key.public_key())
        assert len(key_secrets(kube, keys)) == 1  # no key generated: one existed
        metrics = urllib.request.urlopen(f"{app.metrics_server.url}/metrics", timeout=5).read()
        line = f'sealkit_key_sealedsecrets{{fingerprint="{fingerprint_of(key.public_key())}"}} 1.0'
        assert line in metrics.decode()


def test_cutoff_and_renewal_generate_and_never_delete(
    kube: Kube, stack: Any, spaces: tuple[str, str]
) -> None:
    ns, keys = spaces
    key, cert = generate_key_and_cert(2048, now=datetime.now(UTC) - timedelta(days=2))
    kube.create_secret(key_secret_manifest(key, cert, namespace=keys))
    cutoff = (datetime.now(UTC) - timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    with running_controller(
        stack.kubeconfig, keys, [ns], "--key-cutoff-time", cutoff, "--key-renew-period", "0"
    ) as app:
        wait_for(lambda: len(app.keyring.entries()) == 2, 30, "a key made for the cutoff")
        assert app.keyring.latest().fingerprint != fingerprint_of(key.public_key())
        # the old key still opens what it sealed
        kube.create_sealed(sealed_with(key.public_key(), "old", ns))
        wait_for(lambda: value_of(kube, ns, "old") == VALUE, 30, "old key still works")
    assert len(key_secrets(kube, keys)) == 2
    with running_controller(stack.kubeconfig, keys, [ns], "--key-renew-period", "3s") as app:
        first = app.keyring.latest().fingerprint
        wait_for(lambda: len(app.keyring.entries()) >= 3, 30, "renewal")
        assert app.keyring.latest().fingerprint != first
    secrets = key_secrets(kube, keys)
    assert len(secrets) >= 3
    assert all(
        s["type"] == "kubernetes.io/tls"
        and s["metadata"]["name"].startswith("sealed-secrets-key")
        and s["metadata"].get("generateName")
        for s in secrets
    )


def test_byo_key_is_picked_up_live_and_deactivation_unloads(
    kube: Kube, stack: Any, spaces: tuple[str, str]
) -> None:
    ns, keys = spaces
    byo_key, byo_cert = generate_key_and_cert(2048)
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        wait_for(app.keyring.has_keys, 30, "generated key")
        kube.create_sealed(sealed_with(byo_key.public_key(), "byo", ns))
        cond = wait_for(lambda: kube.synced(ns, "byo"), 30, "failing status")
        assert cond["status"] == "False"
        created = kube.create_secret(
            key_secret_manifest(byo_key, byo_cert, namespace=keys, name="restored-key")
        )
        wait_for(lambda: value_of(kube, ns, "byo") == VALUE, 30, "unsealed with the BYO key")
        # the controller writes the Secret first and /status after it: wait, don't race
        wait_for(
            lambda: (kube.synced(ns, "byo") or {}).get("status") == "True",
            30,
            "Synced=True after the BYO key",
        )
        fp = fingerprint_of(byo_key.public_key())
        assert app.keyring.by_fingerprint(fp) is not None
        # a key labelled e.g. `compromised` is not loaded any more (the Secret is untouched)
        created["metadata"]["labels"][KEY_LABEL] = "compromised"
        kube.core.replace_namespaced_secret("restored-key", keys, created)
        wait_for(lambda: app.keyring.by_fingerprint(fp) is None, 30, "key unloaded")
        assert kube.get_secret(keys, "restored-key") is not None


def test_real_kubeseal_seals_with_our_cert_and_we_unseal(
    kube: Kube, stack: Any, kubeseal_path: str, spaces: tuple[str, str]
) -> None:
    ns, keys = spaces
    with running_controller(stack.kubeconfig, keys, [ns]) as app:
        wait_for(app.keyring.has_keys, 30, "generated key")
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "from-kubeseal", "namespace": ns},
            "type": "kubernetes.io/basic-auth",
            "stringData": {"username": "admin", "password": VALUE},
        }
        out = subprocess.run(
            [kubeseal_path, "--cert", f"{app.api.url}/v1/cert.pem", "-o", "json"],
            input=json.dumps(secret),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        ).stdout
        kube.create_sealed(json.loads(out))
        s = wait_for(lambda: kube.get_secret(ns, "from-kubeseal"), 30, "Secret from kubeseal")
        assert s["type"] == "kubernetes.io/basic-auth"
        assert base64.b64decode(s["data"]["password"]).decode() == VALUE
        wait_for(
            lambda: (kube.synced(ns, "from-kubeseal") or {}).get("status") == "True",
            30,
            "Synced=True for the kubeseal-made SealedSecret",
        )
