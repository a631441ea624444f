"""vault-bootstrap against mistakes and outages (issue 12, item 14), through the real CLI.

- an empty config is an error, not a plan to delete everything;
- ``--prune`` refuses to delete everything the tool owns unless ``--prune-all`` says so
  (real OpenBao);
- with Vault unreachable, retries log at debug only and the error is one line naming the
  real cause (not "token ... was refused");
- 5,000-deep nesting names the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from vb_helpers import clean_env, run_cli

POLICY = 'path "secret/data/x" {\n  capabilities = ["read"]\n}\n'


def _policy(name: str) -> str:
    return f"policies:\n  {name}:\n    policy: |\n" + "".join(
        "      " + line + "\n" for line in POLICY.splitlines()
    )


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# nothing\n",
        "connection: {}\n",
        "prune: true\n",
        "auth: {}\nsecrets: {}\npolicies: {}\nkv: {}\n",
    ],
)
def test_empty_config_is_an_error(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "empty.yaml", text)
    out = run_cli("validate", "-f", path, env=clean_env())
    assert out.code == 1
    assert (
        out.stderr == f"error: {path}: the config declares nothing (no init, auth, secrets, "
        "policies or kv)\n"
    )


@pytest.mark.parametrize("shape", ["flow", "block"])
def test_deep_nesting_names_the_file(tmp_path: Path, shape: str) -> None:
    depth = 5000
    if shape == "flow":
        text = "policies: " + "[" * depth + "]" * depth + "\n"
    else:
        text = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "x\n"
    path = _write(tmp_path, "deep.yaml", text)
    out = run_cli("validate", "-f", path, env=clean_env())
    assert out.code == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {path}: "), out.stderr
    assert "RecursionError" not in out.stderr and "unexpected" not in out.stderr


def test_unreachable_vault_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    from devstack import ports

    addr = f"http://127.0.0.1:{ports.free_port()}"
    path = _write(tmp_path, "p.yaml", _policy("app"))
    env = clean_env() | {"VAULT_ADDR": addr, "VAULT_TOKEN": "some-token"}
    out = run_cli("apply", "-v", "--no-wait", "--retry-timeout", "3", "-f", path, env=env)
    assert out.code == 1
    assert re.fullmatch(
        rf"error: connection: .*cannot reach {re.escape(addr)}: "
        r"ConnectionError \(retried for 3s\)\n",
        out.stderr,
    ), out.stderr
    assert "refused" not in out.stderr and "retrying" not in out.stderr
    debug = run_cli("apply", "--debug", "--no-wait", "--retry-timeout", "2", "-f", path, env=env)
    assert debug.code == 1 and "retrying for up to 2s" in debug.stderr  # still there at debug


@pytest.mark.stack
def test_prune_refuses_to_delete_everything_unless_told(
    stack: Any, private_bao: Any, tmp_path: Path
) -> None:
    env = clean_env() | {"VAULT_ADDR": private_bao.addr, "VAULT_TOKEN": private_bao.token}
    kv_mount = "secrets:\n  secret:\n    type: kv-v2\n"
    owned = _write(tmp_path, "a.yaml", kv_mount + _policy("app-read"))
    applied = run_cli("apply", "-f", owned, env=env)
    assert applied.code == 0, applied.output
    # Only the dev server's existing `secret/` mount is left: nothing the tool created stays.
    adopted_only = _write(tmp_path, "b.yaml", kv_mount)
    refused = run_cli("plan", "--prune", "-f", adopted_only, env=env)
    assert refused.code == 1, refused.output
    assert refused.stderr == (
        "error: prune would delete all 1 objects vault-bootstrap owns and "
        "leave none; check the config, or pass --prune-all to really "
        "delete everything\n"
    )
    told = run_cli("plan", "--prune", "--prune-all", "-f", adopted_only, env=env)
    assert told.code == 2, told.output
    assert "app-read" in told.stdout
    # A prune that keeps something owned is not affected.
    keep = _write(tmp_path, "c.yaml", kv_mount + _policy("other"))
    assert run_cli("plan", "--prune", "-f", keep, env=env).code == 2
