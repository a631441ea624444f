"""devstack: the local stack sealkit's tests and demo run against.

A real Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager
built from the Go module proxy by `devstack/build-binaries.sh`), OpenBao in dev
mode, a throwaway PostgreSQL cluster, the real Bitnami kubeseal, and kubectl,
all as local processes on 127.0.0.1 with free ports. See docs/devstack.md.

Command line (the Makefile's `stack-up`/`stack-down`)::

    python -m devstack up|down|status|env [--dir DIR] [--strict]

Python API
----------
``up(directory=None, *, external_kubeconfig=None, strict=False, quiet=False,
stop_at_exit=False) -> Stack``
    Start the stack in ``directory`` (default ``<checkout>/.devstack``), or return
    the healthy one already recorded there. Writes ``state.json`` and the
    shell-sourceable ``env``. ``$SEALKIT_TEST_KUBECONFIG`` (or
    ``external_kubeconfig``) uses an existing cluster instead of starting etcd,
    apiserver and KCM. Raises ``ComponentFailed`` (``.component``, ``.log``,
    ``.report()``) after stopping everything it started.
``down(directory=None)`` / ``load(directory)`` / ``load_healthy(directory)``
``Stack``
    ``.kubeconfig .apiserver_url .ca_file .vault_addr .vault_token .pg_host
    .pg_port .pg_user .pg_password .pg_database .pg_dsn .kubeseal .kubectl .dir
    .env`` (the env-file dict), ``.missing`` (part -> reason), ``.require(*parts)``
    (parts: kube, vault, postgres, kubeseal, kubectl), ``.healthy()``, ``.stop()``.

Fault-test helpers
------------------
``OpenBaoServer(workdir, *, name="openbao", token=None, port=None)``
    A private OpenBao dev server (own port, own root token): ``.start()``,
    ``.stop()``, ``.start()`` again (same address and token, but dev mode is
    in-memory: the restarted server is empty), ``.addr``, ``.token``,
    ``.alive()``; usable as a context manager (stops on exit).
``PostgresServer(workdir, *, name="postgres", user="sealkit", password=None)``
    A private PostgreSQL cluster: ``.start()``, ``.stop()`` (keeps data; start
    again on the same port), ``.destroy()``, ``.dsn``, ``.host``, ``.port``,
    ``.user``, ``.password``, ``.database``; context manager (destroys on exit).
``stop_apiserver(stack)``, ``start_apiserver(stack)``, ``restart_apiserver(stack)``
    Stop/start the stack's own kube-apiserver: same argv, port and etcd; start
    waits for /readyz. Only for a stack this run owns (the shared
    ``make stack-up`` stack serves other test runs too): use
    ``up(tmp_path / "stack")`` for a private control plane (~10 s, ~0.6 GB).
``processes.ProcessRecord``, ``processes.stop``: stop any recorded process.
``deploy.ControllerVariant`` / ``deploy.running_variant(stack, variant, key_secrets=...)``
    The controller from ``deploy/`` as a real pod on the node, changed for a test
    or bench (namespace, args, replicas, image), for whatever must reach it
    through the apiserver's service proxy; deleted when the block ends.
``testing.require(stack, *parts)``, ``testing.unavailable(reason)``
    Skip with the reason, or fail under ``CI=true``.
"""

from __future__ import annotations

from .binaries import MissingComponent
from .components import OpenBaoServer, PostgresServer
from .readiness import ComponentFailed
from .stack import (
    DEFAULT_DIR,
    ENV_VARS,
    Stack,
    down,
    load,
    load_healthy,
    parse_env,
    restart_apiserver,
    start_apiserver,
    stop_apiserver,
    up,
)

__all__ = [
    "DEFAULT_DIR",
    "ENV_VARS",
    "ComponentFailed",
    "MissingComponent",
    "OpenBaoServer",
    "PostgresServer",
    "Stack",
    "down",
    "load",
    "load_healthy",
    "parse_env",
    "restart_apiserver",
    "start_apiserver",
    "stop_apiserver",
    "up",
]
