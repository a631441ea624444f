"""The stack's Vault-API servers: OpenBao and HashiCorp Vault, dev and production-like.

`SEALKIT_VAULT` selection, the `.devstack/env` names of each server, and the production-like
servers (persistent storage, sealed and uninitialised) on real binaries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack import vault_server
from devstack.readiness import http_get


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("openbao", "vault")),
        ("both", ("openbao", "vault")),
        ("openbao", ("openbao",)),
        ("vault", ("vault",)),
        (" Vault ", ("vault",)),
    ],
)
def test_selection(value: str, expected: tuple[str, ...]) -> None:
    assert vault_server.selection({"SEALKIT_VAULT": value}) == expected


def test_bad_selection_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"^SEALKIT_VAULT='hashicorp': expected openbao, vault"):
        vault_server.selection({"SEALKIT_VAULT": "hashicorp"})


def test_env_names_each_server_and_the_default_comes_first() -> None:
    env = vault_server.stack_env(
        {
            "vault": {"addr": "http://v", "token": "vt", "prod_addr": "http://vp"},
            "openbao": {"addr": "http://b", "token": "bt", "prod_addr": "http://bp"},
        }
    )
    assert env == {
        "SEALKIT_VAULT_DEFAULT": "vault",
        "OPENBAO_ADDR": "http://b",
        "OPENBAO_TOKEN": "bt",
        "OPENBAO_PROD_ADDR": "http://bp",
        "HASHICORP_VAULT_ADDR": "http://v",
        "HASHICORP_VAULT_TOKEN": "vt",
        "HASHICORP_VAULT_PROD_ADDR": "http://vp",
    }
    assert tuple(env) == vault_server.ENV_VARS


@pytest.mark.parametrize(
    ("selected", "running", "missing", "restart"),
    [
        ("", ("openbao", "vault"), {}, False),
        ("", ("openbao",), {"hashicorp-vault": "hashicorp-vault: vault not found"}, False),
        ("vault", ("openbao", "vault"), {}, True),  # VAULT_ADDR must become Vault's
        ("", ("vault",), {"openbao": "openbao: not requested for this stack"}, True),
        ("openbao", ("openbao",), {"hashicorp-vault": "not requested"}, False),
        ("nonsense", ("openbao",), {}, True),  # restart, and let the start report the error
    ],
)
def test_a_healthy_stack_restarts_when_the_selection_changes(
    monkeypatch: pytest.MonkeyPatch,
    selected: str,
    running: tuple[str, ...],
    missing: dict[str, str],
    restart: bool,
) -> None:
    monkeypatch.setenv("SEALKIT_VAULT", selected)
    vaults = {f: {"addr": "http://x"} for f in running}
    assert (vault_server.selection_reason(vaults, missing) is not None) == restart


@pytest.mark.parametrize("flavor", ["openbao", "vault"])
def test_prod_config_storage_per_flavour(flavor: str, tmp_path: Path) -> None:
    conf = json.loads(vault_server.prod_config(flavor, tmp_path / "d", 8200, 8201))
    # OpenBao 2.x has no `file` backend; Vault's `file` is its simplest persistent one.
    assert list(conf["storage"]) == (["raft"] if flavor == "openbao" else ["file"])
    assert conf["listener"]["tcp"]["address"] == "127.0.0.1:8200"
    assert conf["listener"]["tcp"]["tls_disable"] is True


@pytest.mark.stack
@pytest.mark.parametrize("flavor", ["openbao", "vault"])
def test_prod_server_starts_uninitialised_and_keeps_its_data(flavor: str, tmp_path: Path) -> None:
    from devstack.testing import require_flavor

    require_flavor(flavor)
    server = vault_server.ProdServer(tmp_path, flavor)
    with server:
        status, body = http_get(f"{server.addr}/v1/sys/health")
        assert status == 501, body  # uninitialised
        health = json.loads(body)
        assert health["initialized"] is False and health["sealed"] is True
        import hvac

        client = hvac.Client(url=server.addr)
        result = client.sys.initialize(secret_shares=1, secret_threshold=1)
        server.stop()
        server.start()  # same port, same data: initialised but sealed again
        status, body = http_get(f"{server.addr}/v1/sys/health")
        assert status == 503, body
        client.sys.submit_unseal_key(result["keys_base64"][0])
        assert client.sys.read_seal_status()["sealed"] is False
    server.reset()
    assert not server.data_dir.exists()


def test_bad_selection_fails_up_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devstack

    monkeypatch.setenv("SEALKIT_VAULT", "consul")
    with pytest.raises(devstack.ComponentFailed) as info:
        devstack.up(tmp_path / "st", parts=("vault",), quiet=True)
    assert info.value.report() == (
        "devstack: vault failed: SEALKIT_VAULT='consul': expected openbao, vault or both"
    )
    assert devstack.load(tmp_path / "st") is None
