"""Fixtures for the install and migration tests: a Kube helper on the stack, and the images.

The images are the project's image and upstream's controller packed as an image, both loaded
into the node's containerd (no registry is reachable: pullPolicy Never).
"""

from __future__ import annotations

from typing import Any

import pytest
from _cluster import Kube
from _helmtools import helm


@pytest.fixture(scope="session")
def node(stack: Any) -> Any:
    """The stack's real node (kubelet + containerd); skip/fail if the stack has none."""
    from devstack.testing import unavailable

    found = getattr(stack, "node", None)
    if not found:
        unavailable("the stack has no node (kubelet, containerd): install tests need pods")
    return found


@pytest.fixture
def kube(stack: Any, node: Any, kubectl_path: str, kubeseal_path: str) -> Kube:
    return Kube(stack.kubeconfig, kubectl=kubectl_path, helm=helm(), kubeseal=kubeseal_path)


def _image_values(ref: str) -> dict[str, str]:
    repository, _, tag = ref.rpartition(":")
    registry, _, repo = repository.partition("/")
    if "." not in registry and ":" not in registry and registry != "localhost":
        registry, repo = "", repository
    return {"registry": registry, "repository": repo, "tag": tag, "pullPolicy": "Never"}


@pytest.fixture(scope="session")
def sealkit_image(node: Any) -> dict[str, str]:
    return _image_values(node.image("sealkit"))


@pytest.fixture(scope="session")
def upstream_image(node: Any) -> dict[str, str]:
    return _image_values(node.image("sealed-secrets-controller"))


@pytest.fixture
def stack_kube(stack: Any, kubectl_path: str, kubeseal_path: str) -> Kube:
    """The same helper on the control plane alone (object-level tests need no node)."""
    return Kube(stack.kubeconfig, kubectl=kubectl_path, helm=helm(), kubeseal=kubeseal_path)
