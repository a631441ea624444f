"""E2E fixtures: the walkthrough of `make demo` (scripts/walkthrough.py), isolated per run.

The demo itself runs in `default` with keys in `kube-system` against the stack's OpenBao. Test
runs share the apiserver with other runs and helpers, so here everything is private: the example
moves to a fresh namespace, the controller watches only it and keeps its keys in a second fresh
namespace, and Vault is a private OpenBao dev server (the bootstrap writes fixed mount paths).
PostgreSQL is shared: the database engine only adds uniquely named roles to it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_walkthrough() -> ModuleType:
    """scripts/walkthrough.py (the demo's building blocks) as a module; scripts/ is no package."""
    name = "sealkit_walkthrough"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "walkthrough.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def demo() -> ModuleType:
    """The walkthrough module: the same functions `make demo` runs."""
    return load_walkthrough()


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def walk(
    stack: Any, kube_api: Any, demo: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A running walkthrough: private namespaces, controller and OpenBao; nothing applied yet."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from devstack.components import OpenBaoServer
    from devstack.testing import require

    require(stack, "kube", "vault", "postgres", "kubectl")
    core = client.CoreV1Api(kube_api)
    suffix = secrets.token_hex(3)
    app_ns, key_ns = f"e2e-app-{suffix}", f"e2e-keys-{suffix}"
    for ns in (app_ns, key_ns):
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"sealkit-test": "1"}))
        )
    workdir = tmp_path_factory.mktemp("e2e")
    log = demo.Log(workdir / "e2e.log")
    bao = OpenBaoServer(workdir / "openbao")
    walk = demo.Walkthrough(
        env=dict(stack.env),
        workdir=workdir,
        namespace=app_ns,
        key_namespace=key_ns,
        log=log,
        vault_addr="",
        vault_token="",
    )
    try:
        bao.start()
        walk.vault_addr, walk.vault_token = bao.addr, bao.token
        demo.install_crd(walk.kubectl, walk.kubeconfig, log)
        walk.controller = demo.Controller(
            kubeconfig=walk.kubeconfig, namespaces=[app_ns], key_namespace=key_ns, workdir=workdir
        )
        walk.controller.start()
        yield walk
    except demo.StepFailed as err:
        pytest.fail(
            f"{err}\n--- log tail ---\n{log_tail(log.path)}\n--- controller ---\n"
            f"{log_tail(workdir / 'controller.log')}",
            pytrace=False,
        )
    finally:
        if walk.controller is not None:
            walk.controller.stop()
        bao.stop()
        rbac = client.RbacAuthorizationV1Api(kube_api)
        for crb in rbac.list_cluster_role_binding().items:
            if crb.metadata.name.endswith(f"-{app_ns}"):
                with contextlib.suppress(ApiException):
                    rbac.delete_cluster_role_binding(crb.metadata.name)
        for ns in (app_ns, key_ns):
            with contextlib.suppress(ApiException):
                core.delete_namespace(ns)
