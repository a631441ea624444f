"""Shared fixtures: the local stack (see devstack/ and docs/devstack.md).

Import-light on purpose: unit tests collect this file too, so kubernetes,
hvac and devstack itself are imported inside the fixtures that need them.

- `stack` (session): reuses this checkout's healthy `make stack-up` stack
  (`.devstack/`) unless `make demo` runs on it, else starts a private one in a
  temp dir and stops it at the end of the session. Parts whose binaries are
  missing are skipped by the fixtures that need them (a failure under CI=true).
- `kube_api`, `vault_client`, `pg_dsn`, `kubeseal_path`, `kubectl_path`:
  clients/paths for one part each; `namespace` (function): a fresh namespace,
  deleted at teardown.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from devstack import Stack


def require(stack: Stack, *parts: str) -> None:
    from devstack.testing import require as _require

    _require(stack, *parts)


def unavailable(reason: str) -> None:
    from devstack.testing import unavailable as _unavailable

    _unavailable(reason)


def in_ci() -> bool:
    from devstack.testing import in_ci as _in_ci

    return _in_ci()


def _reusable(candidate: Stack | None) -> bool:
    """A healthy `.devstack` stack is reused unless it lacks a part we could start now."""
    if candidate is None:
        return False
    external = os.environ.get("SEALKIT_TEST_KUBECONFIG")
    if external and (
        not candidate.external_kube
        or Path(candidate.kubeconfig or "").resolve() != Path(external).resolve()
    ):
        return False
    # The demo deploys a cluster-wide controller (and Argo CD) on its stack; the
    # tests run controllers of their own, so they never share a stack with it.
    if (Path(candidate.dir) / "demo").exists():
        return False
    return candidate.incomplete_reason() is None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import devstack

    shared = devstack.load_healthy()
    if _reusable(shared):
        assert shared is not None
        yield shared
        return
    try:
        own = devstack.up(
            tmp_path_factory.mktemp("devstack"), strict=in_ci(), quiet=True, stop_at_exit=True
        )
    except devstack.MissingComponent as err:
        unavailable(str(err))
    except devstack.ComponentFailed as err:
        pytest.fail(err.report(), pytrace=False)
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture(scope="session")
def kube_api(stack: Stack) -> Iterator[Any]:
    """kubernetes.client.ApiClient for the stack's admin kubeconfig (no global config)."""
    require(stack, "kube")
    from kubernetes import config

    client = config.new_client_from_config(config_file=stack.kubeconfig)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session", params=["openbao", "vault"])
def vault_client(stack: Stack, request: pytest.FixtureRequest) -> Any:
    """hvac.Client with the root token of the stack's dev server of each flavour:
    `[openbao]` and `[vault]` (HashiCorp Vault; SEALKIT_VAULT deselects one)."""
    from devstack.testing import require_flavor
    from devstack.vault_server import part_name

    flavor = require_flavor(request.param)
    require(stack, "vault", part_name(flavor))
    import hvac

    info = stack.vaults.get(flavor) or {}
    if not info and flavor == "openbao" and not stack.vaults:  # a stack from before the flavours
        info = {"addr": stack.vault_addr or "", "token": stack.vault_token or ""}
    if not info.get("addr"):
        unavailable(f"{flavor}: this stack runs no {flavor} dev server (restart it)")
    return hvac.Client(url=info["addr"], token=info["token"])


@pytest.fixture(scope="session")
def pg_dsn(stack: Stack) -> str:
    """libpq DSN of the stack's PostgreSQL superuser."""
    require(stack, "postgres")
    return stack.pg_dsn


@pytest.fixture(scope="session")
def kubeseal_path(stack: Stack) -> str:
    require(stack, "kubeseal")
    assert stack.kubeseal
    return stack.kubeseal


@pytest.fixture(scope="session")
def kubectl_path(stack: Stack) -> str:
    require(stack, "kubectl")
    assert stack.kubectl
    return stack.kubectl


def _namespace_name(node_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(kube_api: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for this test (several runs share one apiserver); deleted after."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    name = _namespace_name(request.node.name)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"sealkit-test": "1"}))
    )
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise


@pytest.fixture(scope="session")
def argocd(stack: Stack) -> Any:
    """The stack's Argo CD (`devstack.argocd_apps.ArgoCD`), started once if it is not running.

    Redis, the Git server and Argo CD's components join the session's stack (so they stop
    with it; a shared `.devstack` stack keeps them until `make stack-down`).
    """
    require(stack, "kube", "kubectl")
    from devstack import ComponentFailed
    from devstack.argocd_apps import ArgoCD
    from devstack.stack import with_argocd

    try:
        with_argocd(stack, strict=in_ci())
    except ComponentFailed as err:
        pytest.fail(err.report(), pytrace=False)
    require(stack, "argocd")
    return ArgoCD(stack.env, stack.kubectl)
