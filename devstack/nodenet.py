"""The node's "box": its own network namespace and private mount namespace.

One holder process (`unshare --net --mount`) owns both namespaces; every node
process (containerd, kubelet, kube-proxy) joins them with `nsenter`. Nothing
is registered under the host's `/run` (no `ip netns add`): the namespaces live
exactly as long as processes run in them, so stopping the node's processes
removes its interfaces, routes, nftables tables and mounts with them.

Inside the box, `/var/lib`, `/var/log` and `/run` are bind mounts of the
node's own state directories (the kubelet and containerd write to hard-coded
paths there), and the few machine-wide sysctl files the kubelet insists on
writing are covered by plain-file copies, so the machine's values never change.

    host netns                               box (node netns + mount ns)
    relays <host_ip>:P -> 127.0.0.1:P        containerd, kubelet, kube-proxy
    route <pod /24> via <node_ip>            veth <node_ip>/30, bridge cni0 <pod /24>
    veth <host_ip>/30                        no default route, no masquerade,
                                             nftables guard: host only on relay ports
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from . import binaries
from .nodeconf import NodeLayout

VETH_PREFIX = "10.214"  # <host_ip>/30 per node: 10.214.N.1 (host), 10.214.N.2 (node)
POD_PREFIX = "10.215"  # pod /24 per node: 10.215.N.0/24
NODE_NAME = "devstack-node"
# The kubelet writes these machine-wide sysctls unless protectKernelDefaults
# refuses to start; the box covers them with plain files.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)

BOX_SCRIPT = r"""
set -eu
node="$1"
mkdir -p "$node/var-lib" "$node/var-log" "$node/run" "$node/sysctl"
mount --bind "$node/var-lib" /var/lib
mount --bind "$node/var-log" /var/log
mount --bind "$node/run" /run
shift
for f in "$@"; do
  copy="$node/sysctl/$(echo "$f" | tr / .)"
  cat "/proc/sys/$f" > "$copy"
  mount --bind "$copy" "/proc/sys/$f"
done
ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward
touch "$node/box.ready"
exec sleep infinity
"""


class NodeNetError(RuntimeError):
    """The node's namespaces or network could not be set up."""


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise NodeNetError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")
    return proc


def box_ready_marker(node_dir: Path) -> Path:
    return node_dir / "box.ready"


def box_argv(node_dir: Path) -> list[str]:
    """argv of the holder process (it execs `sleep infinity` once the box is ready)."""
    return [
        "unshare",
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--",
        "bash",
        "-c",
        BOX_SCRIPT,
        "sealkit-node-box",
        str(node_dir),
        *SYSCTLS,
    ]


def enter(holder_pid: int, argv: list[str]) -> list[str]:
    """`argv` run inside the box (nsenter execs it: same pid)."""
    return ["nsenter", f"--target={holder_pid}", "--net", "--mount", "--", *argv]


def ns_ids(pid: int) -> tuple[str, str]:
    """(net, mnt) namespace ids of a process, e.g. ('net:[4026532300]', 'mnt:[...]')."""
    return os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/mnt")


@contextlib.contextmanager
def _subnet_lock() -> Iterator[None]:
    """Serialise subnet choice among stacks on this machine (lock in the cache, not /run)."""
    lock = binaries.cache_dir() / "node-subnets.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _used_subnets() -> set[int]:
    text = _run(["ip", "-4", "-o", "addr", "show"]).stdout
    return {int(n) for n in re.findall(rf"inet {re.escape(VETH_PREFIX)}\.(\d+)\.", text)}


def _tag(node_dir: Path) -> str:
    return hashlib.sha256(str(node_dir.resolve()).encode()).hexdigest()[:8]


def wire(node_dir: Path, holder_pid: int) -> NodeLayout:
    """Create the veth pair into the box, addresses and routes; return the layout."""
    tag = _tag(node_dir)
    host_if, node_if = f"skn{tag}", f"sknp{tag[:7]}"
    _run(["ip", "link", "del", host_if], check=False)  # a leftover of a killed stack
    with _subnet_lock():
        free = [n for n in range(1, 255) if n not in _used_subnets()]
        if not free:
            raise NodeNetError(f"no free {VETH_PREFIX}.N.0/30 subnet left")
        n = free[int(tag, 16) % len(free)]
        layout = NodeLayout(
            name=NODE_NAME,
            host_ip=f"{VETH_PREFIX}.{n}.1",
            node_ip=f"{VETH_PREFIX}.{n}.2",
            pod_cidr=f"{POD_PREFIX}.{n}.0/24",
            cgroup_root=f"/sealkit-{tag}",
            dir=str(node_dir),
        )
        _run(
            [
                "ip",
                "link",
                "add",
                host_if,
                "type",
                "veth",
                "peer",
                "name",
                node_if,
                "netns",
                str(holder_pid),
            ]
        )
        _run(["ip", "addr", "add", f"{layout.host_ip}/30", "dev", host_if])
    _run(["ip", "link", "set", host_if, "up"])
    inside = ["nsenter", f"--target={holder_pid}", "--net", "--"]
    _run([*inside, "ip", "addr", "add", f"{layout.node_ip}/30", "dev", node_if])
    _run([*inside, "ip", "link", "set", node_if, "up"])
    # The host reaches pods through the node; the node has no default route.
    _run(["ip", "route", "replace", layout.pod_cidr, "via", layout.node_ip, "dev", host_if])
    return layout


def guard(holder_pid: int, rules: str) -> None:
    """Load the node namespace's nftables guard (see `nodeconf.node_filter_nft`)."""
    proc = subprocess.run(
        ["nsenter", f"--target={holder_pid}", "--net", "--", "nft", "-f", "-"],
        input=rules,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        raise NodeNetError(f"nft in the node namespace failed: {proc.stderr.strip()}")


def host_interface(node_dir: Path) -> str:
    return f"skn{_tag(node_dir)}"


def unwire(node_dir: Path) -> None:
    """Remove the host end of the veth (and its route) if the box left it behind."""
    _run(["ip", "link", "del", host_interface(node_dir)], check=False)
