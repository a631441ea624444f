"""Argo CD on the stack: Redis, a Git server, and Argo CD's own components as host processes.

Argo CD's local development setup (its `Procfile`) runs the application
controller, repo server and API server outside the cluster with a kubeconfig
and `ARGOCD_FAKE_IN_CLUSTER=true`: the in-cluster destination
`https://kubernetes.default.svc` then means "the kubeconfig's cluster". The
stack does the same with the real binary built from the Go module proxy
(`build-binaries.sh argocd`). The namespace Argo CD lives in comes from the
kubeconfig context, so it gets a kubeconfig of its own whose context namespace
is `argocd`.

CRDs and the default config (argocd-cm, argocd-rbac-cm, argocd-secret, ...)
come from the same module's `manifests/`, copied next to the binary by the
build. The resource customizations (health checks, e.g. SealedSecret's) are
embedded in the binary; nothing here replaces or adds one.

The API server runs with `--disable-auth --insecure` on loopback, so the
`argocd` CLI (`--plaintext --server 127.0.0.1:<port>`) needs no login.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from . import binaries, ports
from .binaries import MissingComponent
from .components import Component
from .processes import ProcessRecord
from .readiness import ComponentFailed, http_get

if TYPE_CHECKING:
    from .stack import Stack

NAMESPACE = "argocd"
REPO_NAME = "sealkit"  # the stack's Git repository: <git url>/sealkit.git
REPO_ROOT = Path(__file__).resolve().parent.parent
# Stop order for these parts: Argo CD first (it talks to the rest), Redis last.
STOP_ORDER = (
    "argocd-application-controller",
    "argocd-server",
    "argocd-repo-server",
    "git-server",
    "redis",
)


@dataclass(frozen=True)
class ArgoInstall:
    """The built Argo CD: the multi-call binary's component names and its manifests."""

    dir: Path
    version: str

    def bin(self, name: str) -> str:
        return str(self.dir / name)

    @property
    def crds(self) -> Path:
        return self.dir / "manifests" / "crds"

    @property
    def config(self) -> Path:
        return self.dir / "manifests" / "base" / "config"


def install() -> ArgoInstall:
    """The cached Argo CD build, or MissingComponent (run `build-binaries.sh argocd`)."""
    version = binaries._pinned("ARGOCD_VERSION")
    d = binaries.cache_dir() / f"argocd-{version}"
    for name in ("argocd", "argocd-application-controller", "argocd-repo-server", "argocd-server"):
        if not os.access(d / name, os.X_OK):
            raise MissingComponent(
                "argocd", f"{d / name} not found; run `devstack/build-binaries.sh argocd`"
            )
    if not (d / "manifests" / "crds").is_dir() or not (d / "hack").is_dir():
        raise MissingComponent("argocd", f"{d}/manifests missing; rebuild with build-binaries.sh")
    return ArgoInstall(d, version)


def redis_server() -> str:
    import shutil

    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(path, os.X_OK):
        raise MissingComponent("redis", "redis-server not found (apt-get install redis-server)")
    return path


def redis_ping(port: int, password: str) -> bool:
    """AUTH + PING over RESP; True on +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\r\n")[1:2] == [b"+PONG"]
    except OSError:
        return False


class Redis(Component):
    """Debian's redis-server, loopback only, no persistence, password from a 0600 file."""

    name = "redis"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.binary = redis_server()
        self.password = secrets.token_hex(16)
        self.repick_ports()

    def repick_ports(self) -> None:
        self.port = ports.free_port()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def build_record(self) -> ProcessRecord:
        conf = self.workdir / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                f"bind 127.0.0.1\nport {self.port}\nprotected-mode yes\n"
                f'save ""\nappendonly no\ndir {self.workdir}\n'
                f"requirepass {self.password}\n"
            )
        return ProcessRecord(name=self.name, argv=[self.binary, str(conf)], log=self.log)

    def is_ready(self) -> bool:
        return redis_ping(self.port, self.password)


class GitServer(Component):
    """`python -m devstack.gitserver`: bare repositories under <workdir>/git over smart HTTP."""

    name = "git-server"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.root = self.workdir / "git"
        self.root.mkdir(parents=True, exist_ok=True)
        from .gitserver import init_bare

        init_bare(self.root, REPO_NAME)
        self.repick_ports()

    def repick_ports(self) -> None:
        self.port = ports.free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def build_record(self) -> ProcessRecord:
        argv = [
            sys.executable,
            "-m",
            "devstack.gitserver",
            "--root",
            str(self.root),
            "--port",
            str(self.port),
        ]
        return ProcessRecord(name=self.name, argv=argv, log=self.log, cwd=str(REPO_ROOT))

    def is_ready(self) -> bool:
        status, _ = http_get(f"{self.url}/{REPO_NAME}.git/info/refs?service=git-upload-pack")
        return status == 200


def write_argocd_kubeconfig(admin: Path, dest: Path) -> Path:
    """The admin kubeconfig with context namespace `argocd` (where Argo CD finds its config)."""
    config = yaml.safe_load(admin.read_text())
    for ctx in config.get("contexts") or []:
        ctx.setdefault("context", {})["namespace"] = NAMESPACE
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    return dest


# A Unix socket path must fit sun_path (108 bytes with its NUL); Go refuses a
# longer one with "bind: invalid argument".
_SUN_PATH_MAX = 107
_ASKPASS = "reposerver-ask-pass.sock"


def _short_socket_dir(workdir: Path) -> Path:
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"sealkit-argocd-{digest}"


def askpass_socket(workdir: Path) -> Path:
    """The repo server's askpass socket: in the stack, or in a short private dir.

    Stacks made by pytest or in a deep checkout have paths too long for a socket;
    those get `/tmp/sealkit-argocd-<hash of the stack dir>/`, which `down`
    removes (`remove_socket_dir`), so nothing outlives the stack either way.
    """
    inside = workdir / "argocd-data" / "tmp" / _ASKPASS
    if len(os.fsencode(inside)) <= _SUN_PATH_MAX:
        return inside
    short = _short_socket_dir(workdir)
    short.mkdir(mode=0o700, exist_ok=True)
    if short.is_symlink() or short.stat().st_uid != os.getuid():
        raise MissingComponent("argocd", f"{short} is not ours; remove it")
    return short / _ASKPASS


def remove_socket_dir(workdir: Path) -> None:
    """Remove the short socket dir `askpass_socket` may have made for this stack."""
    short = _short_socket_dir(workdir)
    if short.is_dir() and not short.is_symlink():
        shutil.rmtree(short, ignore_errors=True)


class _ArgoComponent(Component):
    """Common environment of Argo CD's processes (as in Argo CD's Procfile)."""

    ready_timeout = 120.0

    def __init__(self, workdir: Path, argo: ArgoInstall, kubeconfig: Path, redis: Redis) -> None:
        super().__init__(workdir)
        self.argo = argo
        self.kubeconfig = kubeconfig
        self.redis = redis
        self.repick_ports()

    def repick_ports(self) -> None:
        self.port = ports.free_port()
        self.metrics_port = ports.free_port()

    def argo_env(self) -> dict[str, str]:
        data = self.workdir / "argocd-data"
        tmp = data / "tmp"
        for sub in ("tls", "ssh", "gpg/keys", "gpg/source", "tmp", "home"):
            (data / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_TLS_DATA_PATH": str(data / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(data / "ssh"),
            "ARGOCD_GNUPGHOME": str(data / "gpg" / "keys"),
            "ARGOCD_GPG_DATA_PATH": str(data / "gpg" / "source"),
            "ARGOCD_GPG_ENABLED": "false",
            "REDIS_PASSWORD": self.redis.password,
            # Upstream's image has hack/git-verify-wrapper.sh on PATH; the repo server needs it.
            "PATH": f"{self.argo.dir / 'hack'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "TMPDIR": str(tmp),
            # The repo server's askpass socket defaults to /tmp/reposerver-ask-pass.sock,
            # outside the stack: it outlived `make stack-down` there.
            "ARGOCD_ASK_PASS_SOCK": str(askpass_socket(self.workdir)),
            "HOME": str(data / "home"),
            # Git and kubectl inside Argo CD must never pick up the user's config.
            "GIT_CONFIG_NOSYSTEM": "1",
            "KUBERNETES_SERVICE_HOST": "",
        }

    def is_ready(self) -> bool:
        status, _ = http_get(f"http://127.0.0.1:{self.metrics_port}/healthz")
        return status == 200


class ArgoRepoServer(_ArgoComponent):
    name = "argocd-repo-server"

    def build_record(self) -> ProcessRecord:
        argv = [
            self.argo.bin("argocd-repo-server"),
            "--address",
            "127.0.0.1",
            f"--port={self.port}",
            "--metrics-address",
            "127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            f"--redis={self.redis.addr}",
            "--disable-tls",
            # v3.6.1 refuses --disable-tls with its default (non-empty) mTLS client CA path.
            "--client-ca-path=",
            "--loglevel=info",
        ]
        return ProcessRecord(name=self.name, argv=argv, log=self.log, env=self.argo_env())


class ArgoAppController(_ArgoComponent):
    """The application controller. Its metrics/healthz server binds 0.0.0.0 (not a flag)."""

    name = "argocd-application-controller"

    def __init__(
        self,
        workdir: Path,
        argo: ArgoInstall,
        kubeconfig: Path,
        redis: Redis,
        repo_server: ArgoRepoServer,
    ) -> None:
        self.repo_server = repo_server
        super().__init__(workdir, argo, kubeconfig, redis)

    def build_record(self) -> ProcessRecord:
        argv = [
            self.argo.bin("argocd-application-controller"),
            f"--repo-server=127.0.0.1:{self.repo_server.port}",
            "--repo-server-plaintext",
            f"--redis={self.redis.addr}",
            f"--metrics-port={self.metrics_port}",
            "--loglevel=info",
        ]
        return ProcessRecord(name=self.name, argv=argv, log=self.log, env=self.argo_env())


class ArgoServer(_ArgoComponent):
    """The API server: what `argocd app get/wait` and the resource tree come from."""

    name = "argocd-server"

    def __init__(
        self,
        workdir: Path,
        argo: ArgoInstall,
        kubeconfig: Path,
        redis: Redis,
        repo_server: ArgoRepoServer,
    ) -> None:
        self.repo_server = repo_server
        super().__init__(workdir, argo, kubeconfig, redis)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def build_record(self) -> ProcessRecord:
        argv = [
            self.argo.bin("argocd-server"),
            "--insecure",
            "--disable-auth",
            "--address",
            "127.0.0.1",
            f"--port={self.port}",
            "--metrics-address",
            "127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            f"--repo-server=127.0.0.1:{self.repo_server.port}",
            "--repo-server-plaintext",
            f"--redis={self.redis.addr}",
            # No Dex: nothing listens there, and with --disable-auth nothing asks.
            "--dex-server=http://127.0.0.1:1",
            "--loglevel=info",
        ]
        return ProcessRecord(name=self.name, argv=argv, log=self.log, env=self.argo_env())

    def is_ready(self) -> bool:
        status, _ = http_get(f"http://{self.addr}/healthz")
        return status == 200


def apply_manifests(kubectl: str, kubeconfig: Path, argo: ArgoInstall) -> None:
    """Namespace `argocd`, the CRDs, and the default config, from Argo CD's own manifests."""

    def run(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [kubectl, "--kubeconfig", str(kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise ComponentFailed("argocd", f"kubectl {args[0]} failed: {last[:300]}")
        return proc.stdout

    def established() -> bool:
        out = run("get", "crd", "applications.argoproj.io", "appprojects.argoproj.io", "-o", "json")
        for crd in json.loads(out)["items"]:
            conds = (crd.get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    run("apply", "--server-side", "--field-manager=devstack", "-f", "-", stdin=yaml.safe_dump(ns))
    # Server-side: the ApplicationSet CRD is too large for a last-applied annotation.
    run(
        "apply",
        "--server-side",
        "--field-manager=devstack",
        "--force-conflicts",
        "-k",
        str(argo.crds),
    )
    deadline = time.monotonic() + 60
    while not established():
        if time.monotonic() > deadline:
            raise ComponentFailed("argocd", "Argo CD's CRDs not established after 60s")
        time.sleep(0.2)
    run(
        "apply",
        "--server-side",
        "--field-manager=devstack",
        "--force-conflicts",
        "-n",
        NAMESPACE,
        "-k",
        str(argo.config),
    )


def add_to(stack: Stack, directory: Path) -> dict[str, str]:
    """Start Redis, the Git server and Argo CD for a running stack; record them in `stack`.

    Returns the values the stack publishes (see `stack.ENV_VARS`). On failure,
    everything started here is stopped again and the error is raised.
    """
    if not stack.kubeconfig or not stack.kubectl:
        raise MissingComponent("argocd", "needs the stack's kube part and kubectl")
    argo = install()
    d = Path(directory)
    kubeconfig = write_argocd_kubeconfig(Path(stack.kubeconfig), d / "argocd.kubeconfig")
    apply_manifests(stack.kubectl, kubeconfig, argo)
    started: list[Component] = []
    marker = {"SEALKIT_STACK_DIR": str(d)}

    def launch(component: Component) -> None:
        component.env = marker
        started.append(component)
        component.launch()

    try:
        redis, git = Redis(d), GitServer(d)
        launch(redis)
        launch(git)
        redis.wait()
        repo = ArgoRepoServer(d, argo, kubeconfig, redis)
        launch(repo)
        git.wait()
        repo.wait()
        ctl = ArgoAppController(d, argo, kubeconfig, redis, repo)
        server = ArgoServer(d, argo, kubeconfig, redis, repo)
        launch(ctl)
        launch(server)
        ctl.wait()
        server.wait()
    except BaseException:
        for component in reversed(started):
            component.stop()
        raise
    for component in started:
        assert component.record is not None
        stack.processes[component.record.name] = component.record
    return {
        "ARGOCD_SERVER": server.addr,
        "ARGOCD_BIN": argo.bin("argocd"),
        "ARGOCD_KUBECONFIG": str(kubeconfig),
        "SEALKIT_GIT_URL": f"{git.url}/{REPO_NAME}.git",
    }
