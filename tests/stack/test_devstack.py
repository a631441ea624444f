"""The devstack mechanics: env file, idempotent up, failure reporting without orphans,
and the fault-test helpers (private OpenBao/PostgreSQL, apiserver restart)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.testing import require, unavailable

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parents[2]

ENV_VARS = (
    "KUBECONFIG",
    "KUBE_APISERVER_URL",
    "KUBE_CA_FILE",
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "KUBESEAL",
    "KUBECTL",
    "SEALKIT_STACK_DIR",
    "SEALKIT_VAULT_DEFAULT",
    "OPENBAO_ADDR",
    "OPENBAO_TOKEN",
    "OPENBAO_PROD_ADDR",
    "HASHICORP_VAULT_ADDR",
    "HASHICORP_VAULT_TOKEN",
    "HASHICORP_VAULT_PROD_ADDR",
    "ARGOCD_SERVER",
    "ARGOCD_BIN",
    "ARGOCD_KUBECONFIG",
    "SEALKIT_GIT_URL",
)


def devstack_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "SEALKIT_TEST_KUBECONFIG"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _absent(missing: dict[str, str]) -> dict[str, str]:
    """The parts that were wanted but could not start (not the deselected ones)."""
    return {p: why for p, why in missing.items() if "not requested" not in why}


def processes_of(stack_dir: Path) -> list[int]:
    """Pids whose environment marks them as started for `stack_dir` (ours are marked)."""
    marker = f"SEALKIT_STACK_DIR={stack_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def test_env_file_is_sourceable_and_exact(stack: Any) -> None:
    import devstack

    env_file = Path(stack.dir) / "env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it holds the root token
    parsed = devstack.parse_env(env_file.read_text())
    assert tuple(parsed) == ENV_VARS == devstack.ENV_VARS
    assert parsed == stack.env
    assert parsed["SEALKIT_STACK_DIR"] == stack.dir
    script = f"set -eu; . {env_file}; " + "; ".join(f'echo "${v}"' for v in ENV_VARS)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [parsed[v] for v in ENV_VARS]
    for var in ("KUBESEAL", "KUBECTL"):
        if parsed[var]:
            assert os.access(parsed[var], os.X_OK)
    if parsed["KUBECONFIG"]:
        assert Path(parsed["KUBECONFIG"]).is_file()
        assert parsed["KUBE_APISERVER_URL"].startswith("https://")


def test_up_again_returns_at_once_with_the_same_processes(stack: Any) -> None:
    import devstack

    before = {name: rec.pid for name, rec in stack.processes.items()}
    t0 = time.monotonic()
    result = devstack_cli("up", "--dir", stack.dir)
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stderr
    assert "already up" in result.stderr
    assert elapsed < 5
    again = devstack.load(stack.dir)
    assert again is not None
    assert {name: rec.pid for name, rec in again.processes.items()} == before


def test_status_reports_healthy(stack: Any) -> None:
    result = devstack_cli("status", "--dir", stack.dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy" in result.stdout


@pytest.mark.parametrize("component", ["postgres", "openbao", "kube-controller-manager"])
def test_failed_start_names_the_part_and_leaves_no_orphans(component: str, tmp_path: Path) -> None:
    from devstack.binaries import available

    part = {"postgres": "postgres", "openbao": "vault"}.get(component, "kube")
    if not available(part):
        unavailable(f"{part} binaries are missing")
    d = tmp_path / "stack"
    result = devstack_cli("up", "--dir", str(d), env={"SEALKIT_DEVSTACK_BREAK": component})
    assert result.returncode != 0
    assert f"{component} failed" in result.stderr
    assert "devstack-forced-failure" in result.stderr  # the tail of the part's own log
    assert processes_of(d) == []
    assert not (d / "state.json").exists()
    assert devstack_cli("down", "--dir", str(d)).returncode == 0


def test_up_and_down_of_a_private_stack(tmp_path: Path) -> None:
    import devstack

    d = tmp_path / "stack"
    result = devstack_cli("up", "--dir", str(d), "--strict")
    if result.returncode == 3:
        unavailable(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    stack = devstack.load(d)
    assert stack is not None and stack.healthy()
    pids = processes_of(d)
    assert {rec.pid for rec in stack.processes.values()} <= set(pids)
    pg_tmp = list(stack.tempdirs)
    assert devstack_cli("down", "--dir", str(d)).returncode == 0
    assert processes_of(d) == []
    assert not d.exists()
    assert not any(Path(p).exists() for p in pg_tmp)


def test_private_openbao_stop_and_start_again(tmp_path: Path) -> None:
    import hvac

    import devstack

    try:
        bao = devstack.OpenBaoServer(tmp_path, name="private-bao", token="private-token")
    except devstack.MissingComponent as err:
        unavailable(str(err))
    with bao:
        client = hvac.Client(url=bao.addr, token="private-token")
        assert client.is_authenticated()
        addr = bao.addr
        bao.stop()
        assert not bao.alive()
        with pytest.raises(Exception):  # noqa: B017 - connection refused, any flavour
            client.sys.read_health_status(method="GET")
        bao.start()
        assert bao.addr == addr
        assert client.is_authenticated()
    assert not bao.alive()


def test_private_postgres_keeps_data_across_restart(tmp_path: Path) -> None:
    import psycopg

    import devstack

    try:
        pg = devstack.PostgresServer(tmp_path, name="private-pg")
    except devstack.MissingComponent as err:
        unavailable(str(err))
    with pg:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("create table t (v text)")
            conn.execute("insert into t values ('kept')")
        pg.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.dsn, connect_timeout=2)
        pg.start()
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("select v from t").fetchone() == ("kept",)
        tempdir = pg.tempdir
    assert tempdir and not Path(tempdir).exists()


def test_restart_apiserver_keeps_port_and_data(tmp_path: Path) -> None:
    """A private control plane (the shared one serves other test runs)."""
    from kubernetes import client, config

    import devstack

    try:
        stack = devstack.up(tmp_path / "cp", parts=("kube",), strict=True, quiet=True)
    except devstack.MissingComponent as err:
        unavailable(str(err))
    try:
        require(stack, "kube")
        api = config.new_client_from_config(config_file=stack.kubeconfig)
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="survivor"))
        )
        old_pid = stack.processes["kube-apiserver"].pid
        url = stack.apiserver_url
        devstack.stop_apiserver(stack)
        with pytest.raises(Exception):  # noqa: B017 - connection refused
            core.read_namespaced_config_map("survivor", "default", _request_timeout=2)
        devstack.start_apiserver(stack)
        assert stack.processes["kube-apiserver"].pid != old_pid
        assert stack.apiserver_url == url
        api = config.new_client_from_config(config_file=stack.kubeconfig)
        got = client.CoreV1Api(api).read_namespaced_config_map("survivor", "default")
        assert got.metadata.name == "survivor"
        devstack.restart_apiserver(stack)
        assert stack.healthy()
    finally:
        stack.stop()


def test_up_replaces_a_stack_whose_process_died(tmp_path: Path) -> None:
    import signal

    import devstack

    d = tmp_path / "stack"
    try:
        first = devstack.up(d, parts=("vault", "postgres"), strict=True, quiet=True)
    except devstack.MissingComponent as err:
        unavailable(str(err))
    try:
        os.kill(first.processes["openbao"].pid, signal.SIGKILL)
        result = devstack_cli("up", "--dir", str(d))
        assert result.returncode == 0, result.stderr
        assert "replacing the stale stack" in result.stderr
        second = devstack.load(d)
        assert second is not None and second.healthy()
        assert (
            second.vault_addr and second.processes["openbao"].pid != first.processes["openbao"].pid
        )
        # The old PostgreSQL was stopped, not leaked.
        assert not any(Path(p).exists() for p in first.tempdirs)
    finally:
        devstack_cli("down", "--dir", str(d))
    assert processes_of(d) == []


def test_external_kubeconfig_replaces_the_control_plane(tmp_path: Path) -> None:
    """SEALKIT_TEST_KUBECONFIG: use an existing cluster (here: a private control plane)."""
    import devstack

    try:
        cluster = devstack.up(tmp_path / "cluster", parts=("kube",), strict=True, quiet=True)
    except devstack.MissingComponent as err:
        unavailable(str(err))
    d = tmp_path / "stack"
    try:
        result = devstack_cli(
            "up",
            "--dir",
            str(d),
            env={"SEALKIT_TEST_KUBECONFIG": str(cluster.kubeconfig), "SEALKIT_VAULT": "openbao"},
        )
        assert result.returncode == 0, result.stderr
        stack = devstack.load(d)
        assert stack is not None and stack.external_kube
        assert set(stack.processes) == {"openbao", "openbao-prod", "postgres"}
        assert stack.kubeconfig == cluster.kubeconfig
        assert stack.apiserver_url == cluster.apiserver_url
        assert Path(stack.ca_file or "").read_bytes() == Path(cluster.ca_file or "").read_bytes()
    finally:
        devstack_cli("down", "--dir", str(d))
        cluster.stop()


def test_a_lost_port_race_is_retried_on_a_new_port(tmp_path: Path) -> None:
    import socket

    import devstack

    try:
        bao = devstack.OpenBaoServer(tmp_path, name="racy-bao")
    except devstack.MissingComponent as err:
        unavailable(str(err))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        bao.port = taken  # as if another process took the port after we picked it
        with bao:
            assert bao.port != taken
            assert bao.alive()
    log = (tmp_path / "racy-bao.log").read_text()
    assert "address already in use" in log
    assert stat.S_IMODE((tmp_path / "racy-bao.log").stat().st_mode) == 0o600


def test_up_restarts_a_stack_that_lacks_a_part_available_now(tmp_path: Path) -> None:
    import devstack
    from devstack import vault_server
    from devstack.binaries import available

    if not all(available(p) for p in ("kube", "kubeseal", "vault", "postgres")):
        unavailable("needs every part's binaries")
    d = tmp_path / "stack"
    no_go = {"SEALKIT_CACHE_DIR": str(tmp_path / "empty-cache"), "CI": "false"}
    try:
        first = devstack_cli("up", "--dir", str(d), env=no_go)
        assert first.returncode == 0, first.stderr
        warning = next(ln for ln in first.stderr.splitlines() if "started without" in ln)
        assert "kube," in warning + "," and "kubeseal" in warning
        partial = devstack.load(d)
        assert partial is not None
        # The node needs the stack's own control plane, so it is missing with it; so is
        # HashiCorp Vault when selected (its binary lives in the same cache). A flavour
        # SEALKIT_VAULT deselects is listed as "not requested".
        cached = {"kube", "kubeseal", "node"}
        if "vault" in vault_server.selection():
            cached.add("hashicorp-vault")
        assert set(_absent(partial.missing)) == cached
        assert set(partial.missing) - cached <= {"openbao", "hashicorp-vault"}

        second = devstack_cli("up", "--dir", str(d), env={"CI": "false"})
        assert second.returncode == 0, second.stderr
        assert "was missing at start and is available now" in second.stderr
        full = devstack.load(d)
        assert full is not None and _absent(full.missing) == {} and full.healthy()
        assert full.missing == {p: w for p, w in partial.missing.items() if "not requested" in w}
    finally:
        devstack_cli("down", "--dir", str(d))
    assert processes_of(d) == []
