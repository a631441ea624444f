"""Faults on real processes: late OpenBao, OpenBao restarted mid-apply, unreachable PostgreSQL,
init/unseal with a key store, and a root password rotated by Vault."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from vb_helpers import (
    CHAPTER,
    NAME_SERVICE_TOKEN,
    ROOT,
    FileBao,
    chapter_env,
    clean_env,
    hvac_client,
    require,
    run_cli,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def _writes(stdout: str) -> int:
    m = re.search(r"Apply complete: (\d+) writes", stdout)
    assert m, stdout
    return int(m.group(1))


def test_server_started_10s_late_is_waited_for(
    stack: Any, tmp_path: Path, dummy_ca: str, flavor: str
) -> None:
    require(stack, "postgres")
    from devstack import ports
    from devstack.vault_server import dev_server

    server = dev_server(flavor, tmp_path / "late", port=ports.free_port())
    env = chapter_env(stack, server, ca_file=dummy_ca)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vault_bootstrap.cli",
            "apply",
            "-v",
            "--wait-timeout",
            "90",
            "-f",
            str(CHAPTER),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    try:
        time.sleep(10)
        assert proc.poll() is None, f"gave up before {flavor} started"
        server.start()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    assert proc.returncode == 0, stderr
    assert "waiting for Vault: unreachable" in stderr
    assert _writes(stdout) > 0


def test_wait_gives_up_at_the_deadline(stack: Any, dummy_ca: str) -> None:
    from devstack import ports

    class Nowhere:
        addr = f"http://127.0.0.1:{ports.free_port()}"
        token = "unused-token"

    env = chapter_env(stack, Nowhere(), ca_file=dummy_ca)
    start = time.monotonic()
    out = run_cli("plan", "--wait-timeout", "2", "-f", str(CHAPTER), env=env)
    assert out.code == 1
    assert time.monotonic() - start < 30
    assert re.fullmatch(
        r"error: Vault at http://127\.0\.0\.1:\d+ not ready after 2s: "
        r"unreachable \(ConnectionError\)\n",
        out.stderr,
    ), out.stderr


def _init_config(tmp_path: Path, key_file: Path) -> Path:
    text = CHAPTER.read_text() + (
        f"\ninit:\n  secret_shares: 3\n  secret_threshold: 2\n  key_store:\n    file: {key_file}\n"
    )
    path = tmp_path / "init.yaml"
    path.write_text(text)
    return path


def test_init_unseal_keys_to_file_never_printed_and_never_overwritten(
    stack: Any, file_bao: FileBao, tmp_path: Path, dummy_ca: str
) -> None:
    require(stack, "postgres")
    key_file = tmp_path / "keys.json"
    config = _init_config(tmp_path, key_file)
    env = chapter_env(stack, file_bao, ca_file=dummy_ca)
    assert "VAULT_TOKEN" not in env  # the root token comes from the key store

    out = run_cli("apply", "-v", "--debug", "-f", str(config), env=env)
    assert out.code == 0, out.output
    assert "initialising Vault (3 shares, threshold 2)" in out.stderr
    assert "Vault unsealed" in out.stderr
    stored = json.loads(key_file.read_text())
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(stored["unseal_keys_b64"]) == 3
    for secret in [*stored["unseal_keys_b64"], stored["root_token"]]:
        assert secret not in out.output
    assert run_cli("plan", "-f", str(config), env=env).code == 0

    # A second server, fresh and uninitialised, must not get its keys over the old ones.
    file_bao.stop()
    import shutil

    shutil.rmtree(file_bao.workdir / "data")
    (file_bao.workdir / "data").mkdir()
    file_bao.start()
    before = key_file.read_text()
    out = run_cli("apply", "-f", str(config), env=env)
    assert out.code == 1
    assert "refusing to overwrite them" in out.stderr
    assert key_file.read_text() == before


def test_openbao_restarted_mid_apply_then_rerun_converges(
    stack: Any, file_bao: FileBao, tmp_path: Path, dummy_ca: str
) -> None:
    require(stack, "postgres")
    from vault_bootstrap import ApplyError, HvacGateway, load_config, run

    key_file = tmp_path / "keys.json"
    config_path = _init_config(tmp_path, key_file)
    env = chapter_env(stack, file_bao, ca_file=dummy_ca)

    restart_lock = threading.Lock()

    class RestartingGateway(HvacGateway):
        restarted = False

        def write(self, path: str, body: Any, *, retry: bool = True) -> Any:
            # `>=` and a lock: writes of one wave run concurrently, so the count may skip 4.
            with restart_lock:
                if self.writes >= 4 and not self.restarted:
                    self.restarted = True
                    file_bao.stop()
                    file_bao.start()  # back, but sealed: the rest of this apply cannot succeed
            return super().write(path, body, retry=retry)

    gw = RestartingGateway(file_bao.addr, retry_timeout=3)
    with pytest.raises(ApplyError) as info:
        run(load_config(config_path), mode="apply", env=env, gateway=gw, retry_timeout=3)
    assert gw.restarted
    assert "503" in str(info.value) or "cannot reach" in str(info.value)

    rerun = run_cli("apply", "-v", "-f", str(config_path), env=env)
    assert rerun.code == 0, rerun.output
    assert "unsealing Vault" in rerun.stderr
    assert _writes(rerun.stdout) > 0
    final = run_cli("plan", "-f", str(config_path), env=env)
    assert final.code == 0, final.output


def test_unreachable_postgres_names_the_connection_without_password(
    stack: Any, private_bao: Any, dummy_ca: str
) -> None:
    require(stack, "postgres")
    from devstack import ports

    env = chapter_env(stack, private_bao, ca_file=dummy_ca, PGPORT=str(ports.free_port()))
    out = run_cli("apply", "--debug", "-f", str(CHAPTER), env=env)
    assert out.code == 1
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "error: secrets.database.connections.postgres: Vault could not configure database "
        "connection 'database/config/postgres'"
    ), out.stderr
    assert f"127.0.0.1:{env['PGPORT']}" in lines[-1] or "connect" in lines[-1]
    assert env["PGPASSWORD"] not in out.output
    assert NAME_SERVICE_TOKEN not in out.output
    assert "+ database/config/postgres" in out.stdout  # the plan was shown before the writes
    assert "Apply complete" not in out.stdout


def test_rotate_root_then_reapply_never_clobbers_and_version_bump_resends(
    stack: Any, private_bao: Any, tmp_path: Path, dummy_ca: str
) -> None:
    from devstack.components import PostgresServer

    with PostgresServer(tmp_path / "pg", name="vb-pg") as pg:
        env = chapter_env(
            stack,
            private_bao,
            ca_file=dummy_ca,
            PGHOST=pg.host,
            PGPORT=str(pg.port),
            PGUSER=pg.user,
            PGPASSWORD=pg.password,
            PGDATABASE=pg.database,
        )
        client = hvac_client(private_bao.addr, private_bao.token)
        rotating = tmp_path / "rotate.yaml"
        rotating.write_text(
            CHAPTER.read_text().replace(
                "password_version: 1", "password_version: 1\n        rotate_root_version: 1"
            )
        )
        out = run_cli("apply", "-f", str(rotating), env=env)
        assert out.code == 0, out.output
        assert "~ database/config/postgres  [database root credential rotation]" in out.stdout
        import psycopg

        with pytest.raises(psycopg.OperationalError):  # only Vault knows the password now
            psycopg.connect(
                host=pg.host,
                port=pg.port,
                user=pg.user,
                password=pg.password,
                dbname=pg.database,
                connect_timeout=5,
            ).close()
        again = run_cli("apply", "-f", str(rotating), env=env)
        assert again.code == 0 and _writes(again.stdout) == 0, again.output
        creds = client.secrets.database.generate_credentials(
            "welcome-message", mount_point="database"
        )
        assert creds["data"]["username"]

        # The operator resets the password out of band and bumps password_version to send it.
        with psycopg.connect(
            host=pg.tempdir, port=pg.port, user=pg.user, dbname=pg.database, autocommit=True
        ) as conn:  # local trust socket
            conn.execute(f"ALTER ROLE {pg.user} PASSWORD 'reset-by-hand-pw-5566'")
        bumped = tmp_path / "bumped.yaml"
        bumped.write_text(
            rotating.read_text().replace("password_version: 1", "password_version: 2")
        )
        env["PGPASSWORD"] = "reset-by-hand-pw-5566"
        plan = run_cli("plan", "-f", str(bumped), env=env)
        assert plan.code == 2
        assert "~ password = (sensitive)  # password_version 1 -> 2" in plan.stdout
        out = run_cli("apply", "-f", str(bumped), env=env)
        assert out.code == 0 and _writes(out.stdout) == 2, out.output  # connection + state
        assert "reset-by-hand-pw-5566" not in out.output + plan.output
        creds = client.secrets.database.generate_credentials(
            "welcome-message", mount_point="database"
        )
        assert creds["data"]["username"]


def test_clean_env_has_no_client_settings() -> None:
    assert not any(k.startswith(("VAULT_", "BAO_")) for k in clean_env())
