"""One class per stack part: how to start it, and how to tell it is ready.

Each part wraps a `ProcessRecord` (argv, log, pid) so that a stack saved to
`state.json` by one process (`make stack-up`) can be stopped or restarted by
another (`make stack-down`, a fault test). Ports are picked free; a start that
loses the port race is retried on a new port, unless the caller fixed the port
(restarts must keep it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from . import binaries, ports, processes
from .certs import ControlPlaneCerts
from .processes import ProcessRecord
from .readiness import (
    ComponentFailed,
    apiserver_ready,
    etcd_ready,
    kcm_ready,
    openbao_ready,
    postgres_ready,
    wait_ready,
)

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Default-audience tokens carry both; a Vault role without `audience` reviews
# against these, and tokens minted with `--audience vault` also pass.
API_AUDIENCES = f"{SA_ISSUER},vault"
PORT_RETRIES = 3
# Test hook: the component with this name gets an invalid flag, so tests can
# check failure reporting and cleanup on a real failed start.
BREAK_ENV = "SEALKIT_DEVSTACK_BREAK"


class Component:
    """Base: a process record plus a readiness check, with port-race retries."""

    name = "component"
    ready_timeout = 30.0
    fixed_port = False

    def __init__(self, workdir: Path, name: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if name:
            self.name = name
        self.record: ProcessRecord | None = None
        self.env: dict[str, str] = {}

    # subclasses: build_record(), is_ready(), repick_ports()
    def build_record(self) -> ProcessRecord:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def repick_ports(self) -> None:
        raise NotImplementedError

    @property
    def log(self) -> str:
        return str(self.workdir / f"{self.name}.log")

    def launch(self) -> ProcessRecord:
        """Start the process without waiting for readiness."""
        rec = self.build_record()
        if os.environ.get(BREAK_ENV) == self.name:
            rec.argv.append("--devstack-forced-failure")  # an unknown flag: exits at once
        self.record = processes.start(rec, extra_env=self.env)
        return self.record

    def wait(self, timeout: float | None = None) -> None:
        """Wait for readiness; on a lost port race, relaunch on new ports."""
        assert self.record is not None, "launch() first"
        for attempt in range(PORT_RETRIES):
            try:
                wait_ready(self.record, self.is_ready, timeout=timeout or self.ready_timeout)
                return
            except ComponentFailed:
                clash = ports.looks_like_port_clash(processes.tail(self.log, 40))
                if self.fixed_port or not clash or attempt == PORT_RETRIES - 1:
                    self.stop()
                    raise
                self.stop()
                self.repick_ports()
                self.launch()

    def start(self, timeout: float | None = None) -> None:
        self.launch()
        self.wait(timeout)

    def stop(self) -> None:
        if self.record is not None:
            processes.stop(self.record)

    def alive(self) -> bool:
        return self.record is not None and processes.is_alive(self.record)


class Etcd(Component):
    name = "etcd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.binary = binaries.etcd()
        self.repick_ports()

    def repick_ports(self) -> None:
        self.client_port = ports.free_port()
        self.peer_port = ports.free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def build_record(self) -> ProcessRecord:
        client, peer = self.url, f"http://127.0.0.1:{self.peer_port}"
        argv = [
            self.binary,
            "--name=devstack",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=devstack={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        return ProcessRecord(name=self.name, argv=argv, log=self.log)

    def is_ready(self) -> bool:
        return etcd_ready(self.client_port)


class KubeAPIServer(Component):
    name = "kube-apiserver"
    ready_timeout = 90.0
    # Graceful termination can hang on open watches; a test stack need not wait.
    stop_timeout = 5.0

    def __init__(
        self,
        workdir: Path,
        certs: ControlPlaneCerts,
        etcd_url: str,
        *,
        node: tuple[str, Path, Path] | None = None,
    ) -> None:
        """`node`: (host veth address, kubelet client cert, key) when a node joins."""
        super().__init__(workdir)
        self.binary = binaries.kube_apiserver()
        self.certs = certs
        self.etcd_url = etcd_url
        self.node = node
        self.repick_ports()

    def repick_ports(self) -> None:
        self.port = ports.free_port()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def build_record(self) -> ProcessRecord:
        c = self.certs
        argv = [
            self.binary,
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            *self._node_flags(),
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={c.apiserver_crt}",
            f"--tls-private-key-file={c.apiserver_key}",
            f"--client-ca-file={c.ca_crt}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={c.sa_pub}",
            f"--service-account-signing-key-file={c.sa_key}",
            f"--api-audiences={API_AUDIENCES}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]
        return ProcessRecord(
            name=self.name, argv=argv, log=self.log, stop_timeout=self.stop_timeout
        )

    def _node_flags(self) -> list[str]:
        if self.node is None:
            # No kubelet: nothing mounts tokens, and nothing needs Endpoints for
            # the `kubernetes` Service.
            return [
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
            ]
        host_ip, kubelet_crt, kubelet_key = self.node
        # Pods reach the apiserver at the `kubernetes` Service, whose endpoint is
        # the advertised host veth address (a relay forwards it to loopback).
        return [
            f"--advertise-address={host_ip}",
            "--endpoint-reconciler-type=lease",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={kubelet_crt}",
            f"--kubelet-client-key={kubelet_key}",
            f"--kubelet-certificate-authority={self.certs.ca_crt}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def is_ready(self) -> bool:
        c = self.certs
        return apiserver_ready(self.url, str(c.ca_crt), (str(c.admin_crt), str(c.admin_key)))


KCM_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
)


class KubeControllerManager(Component):
    name = "kube-controller-manager"
    ready_timeout = 60.0
    fixed_port = True  # it serves nothing (--secure-port=0)

    def __init__(
        self,
        workdir: Path,
        certs: ControlPlaneCerts,
        kubeconfig: Path,
        apiserver_url: str,
        *,
        all_controllers: bool = False,
    ) -> None:
        """`all_controllers`: with a node, every default controller (Deployments,
        Jobs, EndpointSlices, the kube-root-ca.crt publisher...) as on a real cluster."""
        super().__init__(workdir)
        self.binary = binaries.kube_controller_manager()
        self.certs = certs
        self.kubeconfig = kubeconfig
        self.apiserver_url = apiserver_url
        self.all_controllers = all_controllers

    def repick_ports(self) -> None:  # pragma: no cover - serves no port
        pass

    def build_record(self) -> ProcessRecord:
        c = self.certs
        argv = [
            self.binary,
            f"--kubeconfig={self.kubeconfig}",
            f"--controllers={'*' if self.all_controllers else ','.join(KCM_CONTROLLERS)}",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--cluster-signing-cert-file={c.ca_crt}",
            f"--cluster-signing-key-file={c.ca_key}",
            f"--service-account-private-key-file={c.sa_key}",
            f"--root-ca-file={c.ca_crt}",
            "--use-service-account-credentials=false",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--v=1",
        ]
        return ProcessRecord(name=self.name, argv=argv, log=self.log)

    def is_ready(self) -> bool:
        c = self.certs
        return kcm_ready(self.apiserver_url, str(c.ca_crt), (str(c.admin_crt), str(c.admin_key)))


class OpenBaoServer(Component):
    """OpenBao in dev mode: in-memory, unsealed, root token chosen by us.

    Dev mode keeps nothing across a restart: after `stop()` + `start()` the
    server is empty again (same address, same root token).
    """

    name = "openbao"

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "openbao",
        token: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(workdir, name)
        self.binary = binaries.bao()
        self.token = token or f"devroot-{secrets.token_hex(12)}"
        self.fixed_port = port is not None
        self.port = port or ports.free_port()

    def repick_ports(self) -> None:
        self.port = ports.free_port()

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def build_record(self) -> ProcessRecord:
        argv = [
            self.binary,
            "server",
            "-dev",
            f"-dev-root-token-id={self.token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
            "-dev-no-store-token",
        ]
        # The dev server needs no client settings; strip any the caller has.
        env = {k: "" for k in ("VAULT_ADDR", "BAO_ADDR", "VAULT_TOKEN", "BAO_TOKEN")}
        return ProcessRecord(name=self.name, argv=argv, log=self.log, env=env)

    def is_ready(self) -> bool:
        return openbao_ready(self.addr)

    def start(self, timeout: float | None = None) -> None:
        """Start (or start again, on the same port once it has been used)."""
        super().start(timeout)
        self.fixed_port = True

    def __enter__(self) -> OpenBaoServer:
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def postgres_run_user() -> str | None:
    """initdb refuses to run as root: as root, run PostgreSQL as `postgres` (or `nobody`)."""
    if os.geteuid() != 0:
        return None
    import pwd

    for user in (os.environ.get("SEALKIT_PG_RUN_USER"), "postgres", "sealkit", "nobody"):
        if not user:
            continue
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise binaries.MissingComponent("postgresql", "running as root but no unprivileged user")


class PostgresServer(Component):
    """A throwaway PostgreSQL cluster (initdb in a temp dir) with a password superuser.

    The data directory lives in a fresh temp dir outside the checkout (which
    may not be readable by the unprivileged run user); `stop()` keeps it so
    the server can be started again, `destroy()` removes it.
    """

    name = "postgres"

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "postgres",
        user: str = "sealkit",
        password: str | None = None,
        port: int | None = None,
        database: str = "postgres",
    ) -> None:
        super().__init__(workdir, name)
        self.bins = binaries.postgres()
        self.run_user = postgres_run_user()
        self.user = user
        self.password = password or secrets.token_hex(16)
        self.database = database
        self.fixed_port = port is not None
        self.port = port or ports.free_port()
        self.host = "127.0.0.1"
        self.tempdir: str | None = None

    @property
    def datadir(self) -> str:
        assert self.tempdir is not None
        return os.path.join(self.tempdir, "data")

    @property
    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={self.database}"
        )

    def repick_ports(self) -> None:
        self.port = ports.free_port()

    def _chown(self, path: str) -> None:
        if self.run_user:
            shutil.chown(path, self.run_user, self.run_user)

    def initdb(self) -> None:
        self.tempdir = tempfile.mkdtemp(prefix=f"sealkit-{self.name}-")
        os.chmod(self.tempdir, 0o700)
        self._chown(self.tempdir)
        pwfile = os.path.join(self.tempdir, "pwfile")
        with open(pwfile, "w") as fh:
            fh.write(self.password + "\n")
        os.chmod(pwfile, 0o600)
        self._chown(pwfile)
        argv = [
            self.bins.initdb,
            "-D",
            self.datadir,
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        kwargs: dict[str, object] = {}
        if self.run_user:
            import pwd

            pw = pwd.getpwnam(self.run_user)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tempdir,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
        os.unlink(pwfile)
        if result.returncode != 0:
            raise ComponentFailed(self.name, f"initdb exited {result.returncode}", self.log)

    def build_record(self) -> ProcessRecord:
        if self.tempdir is None:
            self.initdb()
        argv = [
            self.bins.postgres,
            "-D",
            self.datadir,
            "-p",
            str(self.port),
            "-k",
            self.tempdir or "",
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        return ProcessRecord(
            name=self.name,
            argv=argv,
            log=self.log,
            user=self.run_user,
            cwd=self.tempdir,
            stop_signal=int(signal.SIGINT),
        )

    def is_ready(self) -> bool:
        return postgres_ready(self.bins.pg_isready, self.port)

    def start(self, timeout: float | None = None) -> None:
        super().start(timeout)
        self.fixed_port = True

    def destroy(self) -> None:
        self.stop()
        if self.tempdir:
            shutil.rmtree(self.tempdir, ignore_errors=True)
            self.tempdir = None

    def __enter__(self) -> PostgresServer:
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
