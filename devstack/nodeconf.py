"""Configuration files of the node: containerd, CNI, kubelet, kube-proxy.

Pure rendering, no I/O: `devstack.node` writes them. Paths are as seen from
inside the node's box (its private mount namespace), where `/var/lib`,
`/var/log` and `/run` are the stack's own directories, so the defaults of
containerd and the kubelet land in the stack and never on the host.

Why each non-default setting is there (facts from `shared/reference/real-node.md`):

- `restrict_oom_score_adj`: this VM withholds CAP_SYS_RESOURCE, so runc cannot
  lower `oom_score_adj` and every sandbox would fail with "can't get final
  child's PID from pipe".
- `netns_mounts_under_state_dir`: pod network namespaces are bind-mounted under
  containerd's state dir (the box's `/run`), not the host's `/var/run/netns`.
- `failCgroupV1: false`: the machine mounts cgroup v1, which the kubelet
  otherwise refuses; the machine's cgroup mounts stay as they are.
- Pods get a default route to the node (ptp veths); the node namespace itself
  has no default route and no masquerade, so nothing leaves the machine.
- `imageGCHighThresholdPercent: 100`, loose eviction: images built here cannot
  be pulled again, so a shared disk must never evict them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

CLUSTER_DOMAIN = "cluster.local"
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
CLUSTER_DNS_IP = "10.0.0.10"
CNI_BIN_DIR = "/usr/lib/cni"
PAUSE_IMAGE = "localhost/sealkit/pause:3.10"


@dataclass(frozen=True)
class NodeLayout:
    """Names and addresses of one node (see `devstack.nodenet` for how they are picked)."""

    name: str
    host_ip: str  # host end of the veth: where the relays listen
    node_ip: str  # node end of the veth: the kubelet's InternalIP
    pod_cidr: str  # the bridge's /24
    cgroup_root: str  # e.g. /sealkit-1a2b3c4d
    dir: str  # the node's state directory (host path)

    @property
    def pod_gateway(self) -> str:
        return self.pod_cidr.rsplit(".", 1)[0] + ".1"


def containerd_toml(layout: NodeLayout) -> str:
    """containerd 2.x config (version 3). Socket, root and state are box paths."""
    return f"""version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "/run/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "/var/lib/sealkit-node/cni"
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def cni_conflist(layout: NodeLayout) -> str:
    """The pod network: point-to-point veths routed by the node, no masquerade.

    `ptp` rather than a bridge: every packet between pods crosses the node
    namespace's IP layer, so kube-proxy's DNAT works for pod-to-Service-to-pod
    traffic without `br_netfilter` settings (which would be machine-wide)."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "sealkit-node",
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": layout.pod_cidr, "gateway": layout.pod_gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
            ],
        },
        indent=2,
    )


def kubelet_config(layout: NodeLayout, *, ca_file: str, resolv_conf: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": layout.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": layout.node_ip,
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": ca_file},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": layout.cgroup_root,
            "failCgroupV1": False,
            "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [CLUSTER_DNS_IP],
            "resolvConf": resolv_conf,
            "podLogsDir": "/var/log/pods",
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "failSwapOn": False,
            "serializeImagePulls": False,
            "maxPods": 60,
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "staticPodPath": "",
            "shutdownGracePeriod": "0s",
            "localStorageCapacityIsolation": True,
            "featureGates": {},
        },
        sort_keys=False,
    )


def kube_proxy_config(layout: NodeLayout, *, kubeconfig: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clusterCIDR": layout.pod_cidr,
            "hostnameOverride": layout.name,
            "bindAddress": layout.node_ip,
            "healthzBindAddress": f"{layout.node_ip}:10256",
            "metricsBindAddress": f"{layout.node_ip}:10249",
            "nodePortAddresses": [f"{layout.node_ip}/32"],
            "clientConnection": {"kubeconfig": kubeconfig},
            # Leave the (machine-wide) conntrack sysctls alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        },
        sort_keys=False,
    )


def node_filter_nft(layout: NodeLayout, relay_ports: list[int]) -> str:
    """nftables rules of the node namespace: pods and node processes reach the host
    only on the relayed ports. Replies to connections the host opened (apiserver
    to kubelet, service proxy to pods) pass as established traffic."""
    ports = ", ".join(str(p) for p in sorted(set(relay_ports)))
    return f"""table inet sealkit_node_filter
delete table inet sealkit_node_filter
table inet sealkit_node_filter {{
  chain guard {{
    ct state established,related accept
    ip daddr {layout.host_ip} tcp dport {{ {ports} }} accept
    ip daddr {layout.host_ip} drop
    ip daddr != {{ {layout.pod_cidr}, {SERVICE_CIDR}, {layout.node_ip}, 127.0.0.0/8 }} drop
  }}
  chain output {{
    type filter hook output priority filter; policy accept;
    jump guard
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    jump guard
  }}
}}
"""
