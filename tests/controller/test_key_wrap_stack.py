"""Keys wrapped by the real OpenBao's transit engine: no key Secret holds a PEM private key,
a restarted controller unwraps and still unseals, with Vault down it says why (log + Event)
and makes no unwrapped key, and `sealkit keys unwrap` gives upstream-readable Secrets back."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ctl import Kube, ensure_crd, running_controller, temp_namespace, wait_for

from controller.key_wrap import WRAP_ANNOTATION
from controller.keyring import KEY_LABEL
from sealkit.certs import load_public_key
from sealkit.model import seal_secret

pytestmark = pytest.mark.stack
VALUE = "wrapped-known-plaintext-3390"
SEALKIT = str(Path(sys.executable).parent / "sealkit")


@pytest.fixture
def kube(kube_api: Any) -> Kube:
    ensure_crd(kube_api)
    return Kube(kube_api)


@pytest.fixture
def spaces(kube_api: Any) -> Iterator[tuple[str, str]]:
    with temp_namespace(kube_api, "t-kw") as ns, temp_namespace(kube_api, "t-kw-k") as keys:
        yield ns, keys


def sealed_for(pem: bytes, name: str, ns: str) -> dict[str, Any]:
    return seal_secret(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {"v": VALUE},
        },
        load_public_key(pem),
    )


def value_of(kube: Kube, ns: str, name: str) -> str | None:
    s = kube.get_secret(ns, name)
    return base64.b64decode(s["data"]["v"]).decode() if s else None


def test_wrapped_keys_restart_vault_down_and_unwrap(
    kube: Kube,
    stack: Any,
    vault_client: Any,
    spaces: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ns, keys = spaces
    mount = f"transit-{keys}"
    vault_client.sys.enable_secrets_engine("transit", path=mount)
    vault_client.secrets.transit.create_key(name="sealkit", mount_point=mount)
    monkeypatch.setenv("VAULT_ADDR", vault_client.url)
    monkeypatch.setenv("VAULT_TOKEN", vault_client.token)
    wrap = ["--key-wrap", f"transit:{mount}/sealkit", "--key-renew-period", "0"]
    try:
        with running_controller(stack.kubeconfig, keys, [ns], *wrap) as app:
            wait_for(app.keyring.has_keys, 60, "a wrapped key")
            fp, pem = app.keyring.latest().fingerprint, app.keyring.latest().certificate_pem
            stored = kube.list_secrets(keys, KEY_LABEL)
            assert len(stored) == 1
            tls_key = base64.b64decode(stored[0]["data"]["tls.key"])
            assert tls_key.startswith(b"vault:v1:") and b"PRIVATE KEY" not in tls_key
            assert (
                stored[0]["metadata"]["annotations"][WRAP_ANNOTATION] == f"transit:{mount}/sealkit"
            )
            kube.create_sealed(sealed_for(pem, "one", ns))
            wait_for(lambda: value_of(kube, ns, "one") == VALUE, 30, "unsealed")
        # restart: unwrapped in memory again, still unseals
        with running_controller(stack.kubeconfig, keys, [ns], *wrap) as app:
            wait_for(app.keyring.has_keys, 60, "key unwrapped at start")
            assert app.keyring.latest().fingerprint == fp
            kube.delete_secret(ns, "one")
            wait_for(lambda: value_of(kube, ns, "one") == VALUE, 30, "re-created")
        # Vault down: nothing loads, nothing unwrapped is written, and it says why
        caplog.set_level(logging.INFO)
        monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
        with running_controller(stack.kubeconfig, keys, [ns], *wrap) as app:
            kube.create_sealed(sealed_for(pem, "two", ns))
            cond = wait_for(lambda: kube.synced(ns, "two"), 60, "status")
            assert cond["status"] == "False"
            ev = wait_for(
                lambda: [e for e in kube.events(keys) if e["reason"] == "KeyUnwrapFailed"],
                30,
                "Warning event",
            )
            assert "cannot unwrap key Secret" in ev[0]["message"]
            assert not app.keyring.has_keys()
            for s in kube.list_secrets(keys, KEY_LABEL):
                assert b"PRIVATE KEY" not in base64.b64decode(s["data"]["tls.key"])
        texts = "\n".join(r.getMessage() for r in caplog.records)
        assert "cannot unwrap key Secret" in texts and VALUE not in texts
        # roll back: unwrap with the CLI; a controller without --key-wrap loads the key
        monkeypatch.setenv("VAULT_ADDR", vault_client.url)
        proc = subprocess.run(
            [
                SEALKIT,
                "keys",
                "unwrap",
                "--all",
                "--controller-namespace",
                keys,
                "--kubeconfig",
                stack.kubeconfig,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ),
        )
        assert proc.returncode == 0, proc.stderr
        assert fp in proc.stderr and "PRIVATE" not in proc.stderr + proc.stdout
        plain = kube.list_secrets(keys, KEY_LABEL)[0]
        assert b"PRIVATE KEY" in base64.b64decode(plain["data"]["tls.key"])
        assert WRAP_ANNOTATION not in (plain["metadata"].get("annotations") or {})
        with running_controller(stack.kubeconfig, keys, [ns], "--key-renew-period", "0") as app:
            wait_for(app.keyring.has_keys, 60, "plain key")
            assert app.keyring.latest().fingerprint == fp
            wait_for(lambda: value_of(kube, ns, "two") == VALUE, 30, "two unsealed")
    finally:
        vault_client.sys.disable_secrets_engine(path=mount)
