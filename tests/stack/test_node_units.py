"""The node's configuration, rendered without running anything (devstack.nodeconf)."""

from __future__ import annotations

import json
import tomllib

import yaml

from devstack.nodeconf import (
    NodeLayout,
    cni_conflist,
    containerd_toml,
    kube_proxy_config,
    kubelet_config,
    node_filter_nft,
)

LAYOUT = NodeLayout(
    name="devstack-node",
    host_ip="10.214.7.1",
    node_ip="10.214.7.2",
    pod_cidr="10.215.7.0/24",
    cgroup_root="/sealkit-abcd1234",
    dir="/tmp/n",
)


def test_containerd_works_around_the_vm_and_keeps_state_in_the_box() -> None:
    cfg = tomllib.loads(containerd_toml(LAYOUT))
    runtime = cfg["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE here
    assert runtime["netns_mounts_under_state_dir"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cfg["root"] == "/var/lib/containerd" and cfg["state"] == "/run/containerd"
    images = cfg["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"].startswith("localhost/")


def test_pod_network_has_no_masquerade() -> None:
    conf = json.loads(cni_conflist(LAYOUT))
    ptp = conf["plugins"][0]
    assert ptp["type"] == "ptp" and ptp["ipMasq"] is False
    assert ptp["ipam"]["ranges"][0][0]["subnet"] == LAYOUT.pod_cidr


def test_kubelet_settings_that_keep_the_machine_unchanged() -> None:
    cfg = yaml.safe_load(kubelet_config(LAYOUT, ca_file="/ca", resolv_conf="/r"))
    assert cfg["failCgroupV1"] is False
    assert cfg["protectKernelDefaults"] is False
    assert cfg["makeIPTablesUtilChains"] is False
    assert cfg["cgroupRoot"] == LAYOUT.cgroup_root
    assert cfg["imageGCHighThresholdPercent"] == 100
    assert cfg["readOnlyPort"] == 0 and cfg["authentication"]["anonymous"]["enabled"] is False
    assert cfg["podLogsDir"] == "/var/log/pods"  # not podLogsDirectory, which is ignored


def test_kube_proxy_leaves_conntrack_sysctls_alone() -> None:
    cfg = yaml.safe_load(kube_proxy_config(LAYOUT, kubeconfig="/k"))
    assert cfg["mode"] == "nftables"
    assert all(v in (0, "0s") for v in cfg["conntrack"].values())


def test_guard_allows_only_relayed_host_ports() -> None:
    rules = node_filter_nft(LAYOUT, [6443, 8200, 6443])
    assert "ip daddr 10.214.7.1 tcp dport { 6443, 8200 } accept" in rules
    assert "ip daddr 10.214.7.1 drop" in rules
    assert rules.index("accept\n    ip daddr 10.214.7.1 drop") > 0
