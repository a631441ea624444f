"""Where OpenBao and HashiCorp Vault differ on the paths vault_bootstrap touches.

Each test runs on both flavours and names the difference it pins; vault_bootstrap handles both
sides (the code paths are cited in each docstring). What is the same on both is covered by the
rest of this directory, which runs every server-facing test once per flavour.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from vb_helpers import hvac_client

pytestmark = pytest.mark.stack

SERVER_VERSION = {"openbao": r"2\.7\.\d+", "vault": r"1\.21\.\d+"}


def _raw(server: Any, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(
        method,
        f"{server.addr}/v1/{path}",
        headers={"X-Vault-Token": server.token},
        json=body,
        timeout=10,
    )


def test_health_reports_each_servers_version(private_bao: Any, flavor: str) -> None:
    """Same `sys/health` shape on both; `version` tells them apart (2.7.x vs 1.21.x)."""
    health = _raw(private_bao, "GET", "sys/health").json()
    assert health["initialized"] is True and health["sealed"] is False
    assert re.fullmatch(SERVER_VERSION[flavor], health["version"].split("+")[0]), health


@pytest.mark.parametrize("table", ["sys/mounts", "sys/auth"])
def test_enabling_a_used_path_is_400_with_the_same_text_on_both(
    private_bao: Any, table: str
) -> None:
    """Measured on both: 400 and "path is already in use at dup/". (Vault's vault/mount.go and
    vault/auth.go raise `CodedError(409, ...)`, which read as 409 from the source; the system
    backend answers it as a 400 error response, as OpenBao does.) vault_bootstrap lists first
    and, after a retried enable, matches the text "already in use" (`_executor._enable_mount`),
    never the status or the exception type."""
    body = {"type": "kv" if table == "sys/mounts" else "approle"}
    assert _raw(private_bao, "POST", f"{table}/dup", body).status_code == 204
    again = _raw(private_bao, "POST", f"{table}/dup", body)
    assert again.status_code == 400
    assert again.json()["errors"] == ["path is already in use at dup/"]


def test_dev_mode_mounts_kv_v2_at_secret_on_both(private_bao: Any) -> None:
    """Both dev servers mount KV v2 at `secret/` (the chapter's KV mount already exists)."""
    mounts = hvac_client(private_bao.addr, private_bao.token).sys.list_mounted_secrets_engines()
    secret = mounts["data"]["secret/"]
    assert secret["type"] == "kv" and secret["options"]["version"] == "2"


def test_policy_read_extra_fields_only_on_openbao(private_bao: Any, flavor: str) -> None:
    """OpenBao's ACL read adds `version`, `cas_required`, `modified` and its identity-template
    switches; Vault returns `name` and `policy`. vault_bootstrap compares only the trimmed
    `policy` text."""
    text = 'path "secret/data/x" {\n  capabilities = ["read"]\n}\n'
    assert _raw(private_bao, "PUT", "sys/policies/acl/p1", {"policy": text}).status_code == 204
    data = _raw(private_bao, "GET", "sys/policies/acl/p1").json()["data"]
    assert data["name"] == "p1" and data["policy"] == text
    assert ("cas_required" in data) == (flavor == "openbao"), sorted(data)


def test_kv_metadata_version_counter_only_on_openbao(private_bao: Any, flavor: str) -> None:
    """OpenBao's KV v2 metadata adds `current_metadata_version` (its metadata check-and-set);
    vault_bootstrap reads only `custom_metadata` and the versions, which both return."""
    client = hvac_client(private_bao.addr, private_bao.token)
    client.secrets.kv.v2.create_or_update_secret("x", {"k": "v"}, mount_point="secret")
    meta = _raw(private_bao, "GET", "secret/metadata/x").json()["data"]
    assert meta["current_version"] == 1 and "custom_metadata" in meta
    assert ("current_metadata_version" in meta) == (flavor == "openbao"), sorted(meta)
