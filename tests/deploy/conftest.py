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
    """The stack's real node (kubelet + containerd); skip, or fail under CI, without one."""
    from devstack.testing import require

    require(stack, "kube", "node", "kubectl")
    return stack


@pytest.fixture
def kube(stack: Any, node: Any, kubectl_path: str, kubeseal_path: str) -> Kube:
    return Kube(stack.kubeconfig, kubectl=kubectl_path, helm=helm(), kubeseal=kubeseal_path)


def _image_values(ref: str) -> dict[str, str]:
    repository, _, tag = ref.rpartition(":")
    registry, _, repo = repository.partition("/")
    return {"registry": registry, "repository": repo, "tag": tag, "pullPolicy": "Never"}


@pytest.fixture(scope="session")
def sealkit_image(node: Any) -> dict[str, str]:
    """The project's image (its Dockerfile, built by the stack), on the node."""
    from devstack import deploy, images

    archive = images.sealkit_image()
    deploy.ensure_images(node, [archive])
    return _image_values(archive.name)


@pytest.fixture(scope="session")
def upstream_image(node: Any) -> dict[str, str]:
    """Upstream's controller (built from its v0.40.0 module source) as an image, on the node:
    the static binary on an empty base, as upstream ships it; on PATH, because upstream's chart
    runs `controller`."""
    import hashlib
    from pathlib import Path

    from _helmtools import tool

    from devstack import deploy, images

    binary = Path(tool("sealed-secrets-it", "controller", "KUBESEAL_VERSION", "sealed-secrets-it"))
    key = hashlib.sha256(binary.read_bytes()).hexdigest()[:16]
    archive = images._scratch_image(
        "localhost/sealkit/sealed-secrets-controller:v0.40.0",
        {"/usr/local/bin/controller": binary},
        ["/usr/local/bin/controller"],
        key,
    )
    deploy.ensure_images(node, [archive])
    return _image_values(archive.name)


@pytest.fixture
def stack_kube(stack: Any, kubectl_path: str, kubeseal_path: str) -> Kube:
    """The same helper on the control plane alone (object-level tests need no node)."""
    return Kube(stack.kubeconfig, kubectl=kubectl_path, helm=helm(), kubeseal=kubeseal_path)
