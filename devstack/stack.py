"""The whole stack: start in order, save state, reuse when healthy, stop by pid.

State lives in one directory (default `<checkout>/.devstack/`): certificates,
kubeconfig, one log per process, `state.json` (pids, argv, ports, secrets of
this throwaway stack) and the shell-sourceable `env` file.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import argocd, binaries, node, nodenet, processes, vault_server
from .binaries import MissingComponent
from .certs import write_control_plane_certs
from .components import (
    Component,
    Etcd,
    KubeAPIServer,
    KubeControllerManager,
    PostgresServer,
)
from .kubeconfig import server_and_ca, write_kubeconfig
from .nodeconf import KUBERNETES_SERVICE_IP
from .processes import ProcessRecord
from .readiness import (
    apiserver_ready,
    etcd_ready,
    openbao_ready,
    postgres_ready,
    wait_ready,
)

# Argo CD (opt-in part "argocd"): see devstack/argocd.py.
ARGOCD_ENV = ("ARGOCD_SERVER", "ARGOCD_BIN", "ARGOCD_KUBECONFIG", "SEALKIT_GIT_URL")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / ".devstack"
STATE_FILE = "state.json"
ENV_FILE = "env"
PARTS = (
    "kube",
    "vault",
    "postgres",
    "kubeseal",
    "kubectl",
    "openbao",
    "hashicorp-vault",
    "node",
    "argocd",
)
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
    *vault_server.ENV_VARS,
    *ARGOCD_ENV,
)
# Stop order: dependants first.
STOP_ORDER = (
    *argocd.STOP_ORDER,
    "kube-proxy",
    "kubelet",
    "containerd",
    "node-box",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
    "openbao",
    "postgres",
)


@dataclass
class Stack:
    """A running stack: what tests and tools need to talk to it.

    Attributes of a part listed in `missing` are None; use `require()`.
    """

    dir: str
    kubeconfig: str | None = None
    apiserver_url: str | None = None
    ca_file: str | None = None
    vault_addr: str | None = None
    vault_token: str | None = None
    pg_host: str | None = None
    pg_port: int | None = None
    pg_user: str | None = None
    pg_password: str | None = None
    pg_database: str | None = None
    kubeseal: str | None = None
    kubectl: str | None = None
    external_kube: bool = False
    missing: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    tempdirs: list[str] = field(default_factory=list)
    admin_cert: str | None = None
    admin_key: str | None = None
    etcd_url: str | None = None
    # The node (see devstack.node): its layout (nodeconf.NodeLayout as a dict)
    # and the ids of its namespaces, which teardown uses to find its processes.
    node: dict[str, str] | None = None
    node_ns: list[str] = field(default_factory=list)
    # flavour -> {"addr", "token", "prod_addr"}; `vault_addr` is the default one's (vault_server)
    vaults: dict[str, dict[str, str]] = field(default_factory=dict)
    argocd: dict[str, str] = field(default_factory=dict)  # ARGOCD_ENV values

    @property
    def pg_dsn(self) -> str:
        return (
            f"host={self.pg_host} port={self.pg_port} user={self.pg_user} "
            f"password={self.pg_password} dbname={self.pg_database}"
        )

    @property
    def env(self) -> dict[str, str]:
        """The `.devstack/env` variables (empty string for a missing part)."""
        values = {
            "KUBECONFIG": self.kubeconfig,
            "KUBE_APISERVER_URL": self.apiserver_url,
            "KUBE_CA_FILE": self.ca_file,
            "VAULT_ADDR": self.vault_addr,
            "VAULT_TOKEN": self.vault_token,
            "PGHOST": self.pg_host,
            "PGPORT": self.pg_port,
            "PGUSER": self.pg_user,
            "PGPASSWORD": self.pg_password,
            "PGDATABASE": self.pg_database,
            "KUBESEAL": self.kubeseal,
            "KUBECTL": self.kubectl,
            "SEALKIT_STACK_DIR": self.dir,
            **vault_server.stack_env(self.vaults),
            **{k: self.argocd.get(k) for k in ARGOCD_ENV},
        }
        return {k: "" if v is None else str(v) for k, v in values.items()}

    def require(self, *parts: str) -> None:
        """Raise MissingComponent if any of `parts` (see PARTS) is not available."""
        for part in parts:
            if part in self.missing:
                raise MissingComponent(part, self.missing[part])
            if part == "argocd" and not self.argocd:
                raise MissingComponent(part, "not started (devstack up --with argocd)")

    # -- persistence -------------------------------------------------------
    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["processes"] = {k: v.to_json() for k, v in self.processes.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Stack:
        procs = data.pop("processes", {}) or {}
        # Tolerate state written by another devstack version: unknown keys are
        # dropped rather than making the stack (and its pids) unloadable.
        known = {f.name for f in fields(cls)}
        stack = cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]
        stack.processes = {k: ProcessRecord.from_json(v) for k, v in procs.items()}  # type: ignore[union-attr]
        return stack

    def save(self) -> None:
        d = Path(self.dir)
        _write_private(d / STATE_FILE, json.dumps(self.to_json(), indent=2))
        _write_private(d / ENV_FILE, render_env(self.env))

    # -- health ------------------------------------------------------------
    def unhealthy_reason(self) -> str | None:
        """None when every recorded process runs and answers its probe."""
        for name, rec in self.processes.items():
            if not processes.is_alive(rec):
                return f"{name} (pid {rec.pid}) is not running"
        if self.etcd_url and not etcd_ready(int(self.etcd_url.rsplit(":", 1)[1])):
            return "etcd is not healthy"
        if "kube-apiserver" in self.processes and self.admin_cert and self.admin_key:
            assert self.apiserver_url and self.ca_file
            if not apiserver_ready(
                self.apiserver_url, self.ca_file, (self.admin_cert, self.admin_key)
            ):
                return "kube-apiserver is not ready"
        if self.vault_addr and not openbao_ready(self.vault_addr):
            return "openbao is not ready"
        if reason := vault_server.unhealthy_reason(self.vaults):
            return reason
        if self.pg_port and not postgres_ready(binaries.postgres().pg_isready, self.pg_port):
            return "postgres is not ready"
        return None

    def healthy(self) -> bool:
        return self.unhealthy_reason() is None

    def incomplete_reason(self) -> str | None:
        """Why to restart a healthy stack: a part missing at its start is available now."""
        if reason := vault_server.selection_reason(self.vaults, self.missing):
            return reason
        for part, why in self.missing.items():
            if "not requested" in why:
                continue
            if part == "kube" and self.external_kube:
                continue
            if binaries.available(part):
                return f"{part} was missing at start and is available now"
        return None

    # -- stopping ------------------------------------------------------------
    def stop(self) -> None:
        """Stop every recorded process (dependants first) and remove temp dirs.

        The node goes first and by evidence: every process in its cgroups or
        namespaces (pods, shims, containerd, kubelet), then its cgroups."""
        if self.node:
            left = node.teardown(self.node, self.node_ns)
            if left:
                print(f"devstack: WARNING: node leftovers: {left}", file=sys.stderr)
        names = [n for n in STOP_ORDER if n in self.processes]
        names += [n for n in self.processes if n not in names]
        for name in names:
            processes.stop(self.processes[name])
        for tmp in self.tempdirs:
            shutil.rmtree(tmp, ignore_errors=True)
        argocd.remove_socket_dir(Path(self.dir))


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def render_env(env: dict[str, str]) -> str:
    lines = ["# sealkit devstack; source me: . .devstack/env"]
    lines += [f"export {k}={shlex.quote(env[k])}" for k in ENV_VARS]
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """Read an env file written by `render_env` (or plain KEY=value lines)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, _, value = line.partition("=")
        parts = shlex.split(value) if value else [""]
        out[key] = parts[0] if parts else ""
    return out


def resolve_dir(directory: str | Path | None) -> Path:
    return Path(directory).resolve() if directory else DEFAULT_DIR


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise up/down of one stack directory across processes."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load(directory: str | Path | None = None) -> Stack | None:
    """The stack recorded in `directory`, or None (no state file)."""
    path = resolve_dir(directory) / STATE_FILE
    try:
        return Stack.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def load_healthy(directory: str | Path | None = None) -> Stack | None:
    stack = load(directory)
    if stack is not None and stack.healthy():
        return stack
    return None


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"devstack: {msg}", file=sys.stderr, flush=True)


def up(
    directory: str | Path | None = None,
    *,
    external_kubeconfig: str | None = None,
    strict: bool = False,
    quiet: bool = False,
    stop_at_exit: bool = False,
    parts: Iterable[str] = ("kube", "vault", "postgres", "node"),
) -> Stack:
    """Start the stack in `directory` (or return the healthy one already there).

    Parts whose binaries are missing are listed in `Stack.missing` (or raise
    MissingComponent when `strict`). A part that fails to start raises
    ComponentFailed after everything started so far has been stopped.
    `external_kubeconfig` (default: $SEALKIT_TEST_KUBECONFIG) replaces
    etcd/apiserver/KCM with an existing cluster. `parts` limits which
    processes start (e.g. ``("kube",)`` for a private control plane); parts
    not started are listed in `missing` as "not requested". The node needs
    "kube" (a control plane of its own, not an external cluster) and root.
    """
    d = resolve_dir(directory)
    if external_kubeconfig is None:
        external_kubeconfig = os.environ.get("SEALKIT_TEST_KUBECONFIG") or None
    with _locked(d):
        existing = load(d)
        if existing is not None:
            reason = existing.unhealthy_reason() or existing.incomplete_reason()
            if reason is None:
                _say(f"stack in {d} is already up", quiet)
                _add_argocd(existing, d, parts, strict, quiet)
                return existing
            _say(f"replacing the stale stack in {d}: {reason}", quiet)
            existing.stop()
            (d / STATE_FILE).unlink(missing_ok=True)
        stack = _start(d, external_kubeconfig, strict, quiet, frozenset(parts))
        try:
            _add_argocd(stack, d, parts, strict, quiet)
        except BaseException:
            stack.stop()
            raise
        stack.save()
    if stop_at_exit:
        atexit.register(stack.stop)
    return stack


def _start(
    d: Path, external_kubeconfig: str | None, strict: bool, quiet: bool, parts: frozenset[str]
) -> Stack:
    """Start the parts, overlapping their startups; on failure stop all and re-raise.

    Order: launch etcd, OpenBao and PostgreSQL (initdb) together; when etcd is
    ready launch the apiserver; while it starts, wait for OpenBao/PostgreSQL
    (so their failures surface within seconds); then KCM.
    """
    t0 = time.monotonic()
    stack = Stack(dir=str(d))
    started: list[Component] = []
    marker = {"SEALKIT_STACK_DIR": str(d)}

    def missing(part: str, err: MissingComponent) -> None:
        # kubeseal/kubectl are the cluster's tools: only required with `kube`.
        # A Vault flavour deselected by SEALKIT_VAULT is not missing, even under --strict.
        deselected = "not requested for this stack" in str(err)
        if strict and not deselected and (part in parts or "kube" in parts):
            raise err
        stack.missing[part] = str(err)
        _say(f"skipping {part}: {err}", quiet)

    def launch(component: Component) -> None:
        component.env = marker
        started.append(component)
        component.launch()

    def ready(component: Component) -> None:
        component.wait()
        assert component.record is not None
        stack.processes[component.record.name] = component.record

    for part in {"kube", "vault", "postgres", "node"} - parts:
        stack.missing[part] = f"{part}: not requested for this stack"
    etcd: Etcd | None = None
    vaults: list[Component] = []
    pg: PostgresServer | None = None
    layout = None
    box = None
    try:
        for part, finder in (("kubeseal", binaries.kubeseal), ("kubectl", binaries.kubectl)):
            try:
                setattr(stack, part, finder())
            except MissingComponent as err:
                missing(part, err)

        if "kube" in parts and external_kubeconfig is None:
            try:
                binaries.kube_apiserver()
                binaries.kube_controller_manager()
                etcd = Etcd(d)
            except MissingComponent as err:
                missing("kube", err)
            else:
                launch(etcd)
        if "vault" in parts:
            vaults = vault_server.stack_servers(d, missing, stack)
            for server in vaults:
                launch(server)
        if "postgres" in parts:
            try:
                pg = PostgresServer(d)
            except MissingComponent as err:
                missing("postgres", err)
            else:
                started.append(pg)
                pg.initdb()
                assert pg.tempdir
                stack.tempdirs.append(pg.tempdir)
                launch(pg)

        if "node" in parts and etcd is not None:
            try:
                for finder in binaries.NODE_FINDERS:
                    finder()
                if os.geteuid() != 0:
                    raise MissingComponent("node", "a node needs root (namespaces, cgroups)")
            except MissingComponent as err:
                missing("node", err)
            else:
                # The box first: the apiserver advertises the host end of its veth.
                box = node.NodeBox(d / "node")
                launch(box)
                ready(box)
                assert box.record is not None
                layout = nodenet.wire(d / "node", box.record.pid)
                stack.node = asdict(layout)
                stack.node_ns = list(nodenet.ns_ids(box.record.pid))
        elif "node" in parts:
            stack.missing["node"] = "node: needs the stack's own control plane"

        api = None
        if etcd is not None:
            extra_ips = (layout.host_ip, KUBERNETES_SERVICE_IP) if layout else ()
            certs = write_control_plane_certs(d / "pki", extra_ips=extra_ips)
            kubelet_client = None
            if layout is not None:
                nc = node.write_node_certs_for(d / "pki", layout)
                kubelet_client = (
                    layout.host_ip,
                    nc.apiserver_kubelet_crt,
                    nc.apiserver_kubelet_key,
                )
            ready(etcd)
            stack.etcd_url = etcd.url
            api = KubeAPIServer(d, certs, etcd.url, node=kubelet_client)
            launch(api)
        elif "kube" in parts and external_kubeconfig is not None:
            kc = Path(external_kubeconfig).resolve()
            stack.external_kube = True
            stack.kubeconfig = str(kc)
            stack.apiserver_url, stack.ca_file = server_and_ca(kc, d / "external-ca.crt")

        for server in vaults:
            ready(server)
        vault_server.record(stack, vaults)
        if pg is not None:
            ready(pg)
            stack.pg_host, stack.pg_port = pg.host, pg.port
            stack.pg_user, stack.pg_password = pg.user, pg.password
            stack.pg_database = pg.database

        if api is not None:
            ready(api)
            kubeconfig = write_kubeconfig(
                d / "admin.kubeconfig",
                server=api.url,
                ca_file=certs.ca_crt,
                client_cert=certs.admin_crt,
                client_key=certs.admin_key,
            )
            stack.kubeconfig, stack.apiserver_url = str(kubeconfig), api.url
            stack.ca_file = str(certs.ca_crt)
            stack.admin_cert, stack.admin_key = str(certs.admin_crt), str(certs.admin_key)
            kcm = KubeControllerManager(
                d, certs, kubeconfig, api.url, all_controllers=layout is not None
            )
            launch(kcm)
            ready(kcm)
            if layout is not None and box is not None and box.record is not None:
                # In-cluster names of the stack's dev servers: openbao.devstack.svc,
                # vault.devstack.svc (HashiCorp Vault, when built).
                host_services = {
                    flavor: (8200, int(info["addr"].rsplit(":", 1)[1]))
                    for flavor, info in stack.vaults.items()
                    if info.get("addr")
                }
                if pg is not None:
                    host_services["postgresql"] = (5432, pg.port)
                node.start(
                    d,
                    layout,
                    box.record.pid,
                    certs_dir=d / "pki",
                    ca_file=certs.ca_crt,
                    apiserver=(api.url, api.port, (str(certs.admin_crt), str(certs.admin_key))),
                    admin_kubeconfig=kubeconfig,
                    host_services=host_services,
                    launch=launch,
                    ready=ready,
                    say=lambda m: _say(m, quiet),
                )
    except BaseException:
        if stack.node:
            node.teardown(stack.node, stack.node_ns)
        for component in reversed(started):
            component.stop()
        for tmp in stack.tempdirs:
            shutil.rmtree(tmp, ignore_errors=True)
        if pg is not None:
            pg.destroy()
        raise
    _say(f"stack up in {time.monotonic() - t0:.1f}s ({d})", quiet)
    return stack


def _add_argocd(stack: Stack, d: Path, parts: Iterable[str], strict: bool, quiet: bool) -> None:
    """Opt-in part "argocd": added to a running stack too (`up --with argocd`)."""
    if "argocd" in parts:
        with_argocd(stack, strict=strict, quiet=quiet)


def with_argocd(stack: Stack, *, strict: bool = False, quiet: bool = True) -> Stack:
    """Start Argo CD (Redis, Git server, its components) for `stack` unless it runs already.

    The processes join `stack.processes` (so `stack.stop()` and `devstack down`
    stop them); a recorded stack is saved again. A missing build is recorded in
    `stack.missing` (raised when `strict`).
    """
    if stack.argocd:
        return stack
    t0 = time.monotonic()
    try:
        stack.argocd = argocd.add_to(stack, Path(stack.dir))
    except MissingComponent as err:
        if strict:
            raise
        stack.missing["argocd"] = str(err)
        _say(f"skipping argocd: {err}", quiet)
        return stack
    stack.missing.pop("argocd", None)
    _save_if_recorded(stack)
    _say(
        f"argocd up in {time.monotonic() - t0:.1f}s (server {stack.argocd['ARGOCD_SERVER']})", quiet
    )
    return stack


def down(directory: str | Path | None = None, *, quiet: bool = False) -> bool:
    """Stop the recorded stack and remove its state; False if there was none."""
    d = resolve_dir(directory)
    if not d.exists():
        _say(f"no stack in {d}", quiet)
        return False
    with _locked(d):
        stack = load(d)
        if stack is not None:
            stack.stop()  # removes the askpass socket dir too
        else:
            argocd.remove_socket_dir(d)
    shutil.rmtree(d, ignore_errors=True)
    _say(f"stack in {d} stopped" if stack else f"removed {d} (no recorded stack)", quiet)
    return stack is not None


# -- fault-test helpers on a running stack ----------------------------------


def _save_if_recorded(stack: Stack) -> None:
    if (Path(stack.dir) / STATE_FILE).exists():
        stack.save()


def stop_apiserver(stack: Stack) -> None:
    """Stop the stack's kube-apiserver (etcd and KCM keep running)."""
    rec = stack.processes.get("kube-apiserver")
    if rec is None:
        raise MissingComponent("kube-apiserver", "this stack does not run its own apiserver")
    processes.stop(rec)


def start_apiserver(stack: Stack, timeout: float = 90.0) -> None:
    """Start the stack's kube-apiserver again: same argv, same port, same etcd."""
    rec = stack.processes.get("kube-apiserver")
    if rec is None:
        raise MissingComponent("kube-apiserver", "this stack does not run its own apiserver")
    if not processes.is_alive(rec):
        processes.start(rec, extra_env={"SEALKIT_STACK_DIR": stack.dir})
        _save_if_recorded(stack)
    assert stack.apiserver_url and stack.ca_file and stack.admin_cert and stack.admin_key
    admin = (stack.admin_cert, stack.admin_key)
    url, ca = stack.apiserver_url, stack.ca_file
    wait_ready(rec, lambda: apiserver_ready(url, ca, admin), timeout=timeout)


def restart_apiserver(stack: Stack, timeout: float = 90.0) -> None:
    """Stop and start the apiserver (same port, same etcd), waiting for readiness."""
    stop_apiserver(stack)
    start_apiserver(stack, timeout)
