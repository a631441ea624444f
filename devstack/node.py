"""A real Kubernetes node joined to the stack: containerd + runc + CNI, kubelet, kube-proxy.

The node runs in its box (`devstack.nodenet`): its own network namespace and
private mount namespace. Pods reach the host only through relays for the
apiserver, OpenBao and PostgreSQL (`<host_ip>:P -> 127.0.0.1:P`); the
apiserver advertises `<host_ip>`, so the `kubernetes` Service works in pods.

Teardown (`teardown`) is by evidence, not by bookkeeping alone: every process
in the node's cgroups or namespaces is killed, the cgroups under the node's
`cgroupRoot` are removed in every hierarchy (runc also creates them in the
hybrid `unified` one), and the veth disappears with the namespace.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import binaries, nodenet, processes
from .certs import NodeCerts
from .components import Component
from .kubeconfig import write_kubeconfig
from .nodeconf import (
    NodeLayout,
    cni_conflist,
    containerd_toml,
    kube_proxy_config,
    kubelet_config,
    node_filter_nft,
)
from .processes import ProcessRecord
from .readiness import http_get

REPO = Path(__file__).resolve().parent.parent
CGROUP_FS = Path("/sys/fs/cgroup")


class NodeBox(Component):
    """The holder of the node's namespaces (`sleep infinity` once mounts are set)."""

    name = "node-box"
    fixed_port = True
    ready_timeout = 15.0

    def __init__(self, node_dir: Path) -> None:
        super().__init__(node_dir)
        self.node_dir = node_dir
        nodenet.box_ready_marker(node_dir).unlink(missing_ok=True)

    def repick_ports(self) -> None:  # pragma: no cover - no ports
        pass

    def build_record(self) -> ProcessRecord:
        return ProcessRecord(
            name=self.name, argv=nodenet.box_argv(self.node_dir), log=self.log, stop_timeout=2.0
        )

    def is_ready(self) -> bool:
        return nodenet.box_ready_marker(self.node_dir).exists()


class Relay(Component):
    """`<host_ip>:port -> 127.0.0.1:port`, so pods reach one stack service."""

    fixed_port = True
    ready_timeout = 15.0

    def __init__(self, workdir: Path, name: str, host_ip: str, port: int) -> None:
        super().__init__(workdir, name)
        self.host_ip, self.port = host_ip, port

    def repick_ports(self) -> None:  # pragma: no cover - fixed
        pass

    def build_record(self) -> ProcessRecord:
        argv = [
            sys.executable,
            "-m",
            "devstack._forwarder",
            "--listen",
            f"{self.host_ip}:{self.port}",
            "--to",
            f"127.0.0.1:{self.port}",
            "--parent-pid",
            "0",
            "--max-connections",
            "1024",
            "--idle-timeout",
            "0",
        ]
        env = {"PYTHONPATH": str(REPO)}
        return ProcessRecord(
            name=self.name, argv=argv, log=self.log, env=env, cwd=str(REPO), stop_timeout=2.0
        )

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((self.host_ip, self.port), timeout=1):
                return True
        except OSError:
            return False


class BoxProcess(Component):
    """A node process run inside the box (`nsenter` into the holder's namespaces)."""

    fixed_port = True

    def __init__(self, workdir: Path, holder_pid: int, layout: NodeLayout) -> None:
        super().__init__(workdir)
        self.holder_pid = holder_pid
        self.layout = layout

    def repick_ports(self) -> None:  # pragma: no cover - fixed
        pass

    def argv(self) -> list[str]:
        raise NotImplementedError

    def build_record(self) -> ProcessRecord:
        bindir = str(Path(binaries.containerd()).parent)
        env = {"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"}
        return ProcessRecord(
            name=self.name,
            argv=nodenet.enter(self.holder_pid, self.argv()),
            log=self.log,
            env=env,
            stop_timeout=10.0,
        )


class Containerd(BoxProcess):
    name = "containerd"
    ready_timeout = 60.0

    @property
    def socket(self) -> str:
        """The CRI socket as the host sees it (the box's /run is the node's run/)."""
        return str(Path(self.layout.dir) / "run" / "containerd" / "containerd.sock")

    def argv(self) -> list[str]:
        return [binaries.containerd(), "--config", str(Path(self.layout.dir) / "containerd.toml")]

    def is_ready(self) -> bool:
        proc = subprocess.run(
            [binaries.ctr(), "--address", self.socket, "version"], capture_output=True, timeout=10
        )
        return proc.returncode == 0


class Kubelet(BoxProcess):
    name = "kubelet"
    ready_timeout = 90.0

    def __init__(
        self,
        workdir: Path,
        holder_pid: int,
        layout: NodeLayout,
        certs: NodeCerts,
        api: tuple[str, str, tuple[str, str]],
    ) -> None:
        super().__init__(workdir, holder_pid, layout)
        self.certs = certs
        self.api = api  # (url, ca, admin cert pair) to watch the Node become Ready

    def argv(self) -> list[str]:
        d = Path(self.layout.dir)
        return [
            binaries.kubelet(),
            f"--config={d / 'kubelet.yaml'}",
            f"--kubeconfig={d / 'kubelet.kubeconfig'}",
            f"--hostname-override={self.layout.name}",
            f"--node-ip={self.layout.node_ip}",
            f"--cert-dir={d / 'kubelet-pki'}",
            f"--tls-cert-file={self.certs.kubelet_serving_crt}",
            f"--tls-private-key-file={self.certs.kubelet_serving_key}",
            "--v=1",
        ]

    def is_ready(self) -> bool:
        url, ca, admin = self.api
        status, body = http_get(
            f"{url}/api/v1/nodes/{self.layout.name}", ca_file=ca, client_cert=admin
        )
        return status == 200 and b'"type":"Ready","status":"True"' in body.replace(b" ", b"")


class KubeProxy(BoxProcess):
    name = "kube-proxy"
    ready_timeout = 60.0

    def argv(self) -> list[str]:
        return [
            binaries.kube_proxy(),
            f"--config={Path(self.layout.dir) / 'kube-proxy.yaml'}",
            "--v=1",
        ]

    def is_ready(self) -> bool:
        status, _ = http_get(f"http://{self.layout.node_ip}:10256/healthz")
        return status == 200


class KubeScheduler(Component):
    """The scheduler: a host process, like the rest of the control plane."""

    name = "kube-scheduler"
    fixed_port = True
    ready_timeout = 30.0

    def __init__(self, workdir: Path, kubeconfig: Path) -> None:
        super().__init__(workdir)
        self.kubeconfig = kubeconfig
        self.started = 0.0

    def repick_ports(self) -> None:  # pragma: no cover - serves no port
        pass

    def build_record(self) -> ProcessRecord:
        self.started = time.monotonic()
        argv = [
            binaries.kube_scheduler(),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=1",
        ]
        return ProcessRecord(name=self.name, argv=argv, log=self.log)

    def is_ready(self) -> bool:
        return time.monotonic() - self.started > 1.0


def make_cgroup_root(cgroup_root: str) -> None:
    """The kubelet requires its `cgroupRoot` to exist in every hierarchy; a new cpuset
    cgroup must be given the parent's CPUs and memory nodes before it can hold tasks."""
    for hierarchy in CGROUP_FS.iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink():
            continue
        top = hierarchy / cgroup_root.lstrip("/")
        top.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / knob).exists() and not (top / knob).read_text().strip():
                (top / knob).write_text((hierarchy / knob).read_text())


def write_configs(layout: NodeLayout, certs: NodeCerts, server: str, ca_file: Path) -> None:
    """containerd, CNI, kubelet and kube-proxy files, and the two kubeconfigs."""
    d = Path(layout.dir)
    (d / "var-lib" / "sealkit-node" / "cni").mkdir(parents=True, exist_ok=True)
    (d / "containerd.toml").write_text(containerd_toml(layout))
    (d / "var-lib" / "sealkit-node" / "cni" / "10-sealkit.conflist").write_text(
        cni_conflist(layout)
    )
    (d / "resolv.conf").write_text("")
    (d / "kubelet.yaml").write_text(
        kubelet_config(layout, ca_file=str(ca_file), resolv_conf=str(d / "resolv.conf"))
    )
    write_kubeconfig(
        d / "kubelet.kubeconfig",
        server=server,
        ca_file=ca_file,
        client_cert=certs.kubelet_client_crt,
        client_key=certs.kubelet_client_key,
    )
    write_kubeconfig(
        d / "kube-proxy.kubeconfig",
        server=server,
        ca_file=ca_file,
        client_cert=certs.kube_proxy_crt,
        client_key=certs.kube_proxy_key,
    )
    (d / "kube-proxy.yaml").write_text(
        kube_proxy_config(layout, kubeconfig=str(d / "kube-proxy.kubeconfig"))
    )


# -- teardown ---------------------------------------------------------------------------


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _in_node(pid: int, root: str, ns: set[str]) -> bool:
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    for line in cgroups.splitlines():
        path = line.split(":", 2)[-1]
        if path == root or path.startswith(root + "/"):
            return True
    if ns:
        try:
            mine = {os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/mnt")}
        except OSError:
            return False
        return bool(mine & ns)
    return False


def node_processes(cgroup_root: str, ns: set[str]) -> list[int]:
    """Pids in the node's cgroups (pods) or namespaces (containerd, shims, kubelet...)."""
    me = os.getpid()
    return [p for p in _pids() if p != me and _in_node(p, cgroup_root, ns)]


def _cgroup_dirs(cgroup_root: str) -> list[Path]:
    found = []
    for hierarchy in CGROUP_FS.iterdir():
        top = hierarchy / cgroup_root.lstrip("/")
        if top.is_dir():
            found += sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            )
            found.append(top)
    return found


def teardown(layout: dict[str, str], ns: list[str]) -> list[str]:
    """Kill everything of the node and remove its cgroups; returns what was left (empty)."""
    root = layout["cgroup_root"]
    ids = set(ns)
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        for pid in node_processes(root, ids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while node_processes(root, ids) and time.monotonic() < deadline:
            time.sleep(0.1)
    for _ in range(20):
        left = []
        for d in _cgroup_dirs(root):
            try:
                d.rmdir()
            except OSError:
                left.append(str(d))
        if not left:
            break
        time.sleep(0.25)
    nodenet.unwire(Path(layout["dir"]))
    leftovers = [f"pid {p}" for p in node_processes(root, ids)]
    leftovers += [str(d) for d in _cgroup_dirs(root)]
    return leftovers


def box_processes_alive(rec: ProcessRecord) -> bool:
    return processes.is_alive(rec)


# -- start ------------------------------------------------------------------------------


def start(
    d: Path,
    layout: NodeLayout,
    holder_pid: int,
    *,
    certs_dir: Path,
    ca_file: Path,
    apiserver: tuple[str, int, tuple[str, str]],
    admin_kubeconfig: Path,
    host_services: dict[str, tuple[int, int]],
    launch: Callable[[Component], None],
    ready: Callable[[Component], None],
    say: Callable[[str], None],
) -> None:
    """Start relays, scheduler, containerd (with images), kubelet, kube-proxy and the
    add-ons. `apiserver` is (url, port, admin cert pair); `host_services` maps
    service name -> (service port, relay port) for OpenBao and PostgreSQL."""
    from . import addons, images

    url, port, admin = apiserver
    node_dir = Path(layout.dir)
    certs = write_node_certs_for(certs_dir, layout)
    write_configs(layout, certs, f"https://{layout.host_ip}:{port}", ca_file)
    relay_ports = [port] + [relay for _, relay in host_services.values()]
    nodenet.guard(holder_pid, node_filter_nft(layout, relay_ports))
    relays = [Relay(d, "relay-apiserver", layout.host_ip, port)]
    relays += [
        Relay(d, f"relay-{name}", layout.host_ip, relay)
        for name, (_, relay) in host_services.items()
    ]
    for relay in relays:
        launch(relay)
    scheduler = KubeScheduler(d, admin_kubeconfig)
    launch(scheduler)
    containerd = Containerd(node_dir, holder_pid, layout)
    launch(containerd)
    t0 = time.monotonic()
    archives = images.node_images()  # cached unless the source changed
    for relay in relays:
        ready(relay)
    ready(containerd)
    # The kubelet registers the node while the images import; no pod is created
    # before the add-ons below, which come after the imports.
    make_cgroup_root(layout.cgroup_root)
    kubelet = Kubelet(node_dir, holder_pid, layout, certs, (url, str(ca_file), admin))
    proxy = KubeProxy(node_dir, holder_pid, layout)
    launch(kubelet)
    launch(proxy)
    for name, secs in images.import_archives(containerd.socket, archives):
        say(f"imported {name} into the node ({secs:.1f}s)")
    say(f"images ready in {time.monotonic() - t0:.1f}s")
    ready(scheduler)
    kubectl = binaries.kubectl()
    addons.apply(
        kubectl,
        str(admin_kubeconfig),
        addons.coredns_manifests() + addons.host_service_manifests(layout.host_ip, host_services),
    )
    ready(proxy)
    ready(kubelet)
    wait_rollout(kubectl, str(admin_kubeconfig), "kube-system", "coredns")


def write_node_certs_for(certs_dir: Path, layout: NodeLayout) -> NodeCerts:
    from .certs import write_node_certs

    return write_node_certs(certs_dir, layout.name, layout.node_ip)


def wait_rollout(
    kubectl: str, kubeconfig: str, namespace: str, deployment: str, timeout: float = 120.0
) -> None:
    proc = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            kubeconfig,
            "-n",
            namespace,
            "rollout",
            "status",
            f"deployment/{deployment}",
            f"--timeout={int(timeout)}s",
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{namespace}/{deployment} did not roll out: {proc.stderr.strip()}")
