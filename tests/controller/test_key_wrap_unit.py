"""Key wrapping, pure: the key manager with an in-memory transit (the real OpenBao version is
test_key_wrap_stack.py). etcd never gets a PEM key; failures skip the key, record why, and the
key loads once transit answers again."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from controller.key_manager import KeyManager, KeyOptions
from controller.key_wrap import WRAP_ANNOTATION, KeyWrapper, parse_wrap
from controller.keyring import KeyRing
from controller.testing import FakeKubeGateway
from controller.vault_login import VaultUnavailable


class Transit:
    def __init__(self) -> None:
        self.up = True
        self.store: dict[str, str] = {}

    def encrypt_data(self, name: str, plaintext: str, mount_point: str) -> Any:
        if not self.up:
            raise ConnectionError("down")
        ct = f"vault:v1:{len(self.store)}"
        self.store[ct] = plaintext
        return {"data": {"ciphertext": ct}}

    def decrypt_data(self, name: str, ciphertext: str, mount_point: str) -> Any:
        if not self.up:
            raise ConnectionError("down")
        return {"data": {"plaintext": self.store[ciphertext]}}


class Login:
    def __init__(self, transit: Transit) -> None:
        self.transit = transit
        self.reachable = True

    def client(self) -> Any:
        if not self.reachable:
            raise VaultUnavailable("vault unreachable (ConnectionError)")
        return type("C", (), {"secrets": type("S", (), {"transit": self.transit})})


def manager(gw: FakeKubeGateway, login: Login) -> tuple[KeyManager, KeyRing, KeyWrapper]:
    ring = KeyRing()
    km = KeyManager(gw, ring, KeyOptions(namespace="ks", bits=2048))
    wrapper = KeyWrapper(login, "transit", "sealkit", gateway=gw, retry=0.2)  # type: ignore
    km.use_wrap(wrapper)
    return km, ring, wrapper


def test_generate_stores_ciphertext_and_load_unwraps() -> None:
    gw, transit = FakeKubeGateway(), Transit()
    km, ring, _ = manager(gw, Login(transit))
    entry = km.generate()
    stored = next(iter(gw.secrets.values()))
    assert base64.b64decode(stored["data"]["tls.key"]).startswith(b"vault:v1:")
    assert stored["metadata"]["annotations"][WRAP_ANNOTATION] == "transit:transit/sealkit"
    km2, ring2, _ = manager(gw, Login(transit))
    assert km2.load() == 1 and ring2.latest().fingerprint == entry.fingerprint


def test_unreachable_vault_skips_records_and_retries() -> None:
    gw, transit = FakeKubeGateway(), Transit()
    km, _, _ = manager(gw, Login(transit))
    km.generate()
    login = Login(transit)
    login.reachable = False
    km2, ring2, wrapper = manager(gw, login)
    try:
        assert km2.load() == 0
        assert gw.events[-1]["reason"] == "KeyUnwrapFailed"
        assert "vault unreachable" in gw.events[-1]["message"]
        with pytest.raises(RuntimeError, match="cannot wrap"):
            km2.generate()  # never an unwrapped key in etcd
        assert len(gw.secrets) == 1
        login.reachable = True
        deadline = time.monotonic() + 5
        while not ring2.has_keys() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ring2.has_keys()
    finally:
        wrapper.stop()


def test_parse_wrap() -> None:
    assert parse_wrap("transit:t/k") == ("t", "k")
    for bad in ("transit:t", "kms:t/k", "transit:/k", "transit:t/k/x"):
        with pytest.raises(ValueError):
            parse_wrap(bad)
