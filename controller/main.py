"""`sealkit-controller`: the in-cluster unsealing controller (drop-in for Bitnami's).

The flags and their typed, frozen form are `controller.config.ControllerConfig`.

Run order: keys loaded and watched, informers started and synced, HTTP servers up (every
replica), then the Lease election: the leader reconciles and generates/renews keys. SIGTERM or
SIGINT: stop taking work, finish in-flight reconciles, release the Lease, stop the watches,
stop HTTP, exit 0. SIGUSR1 makes the leader generate a new key at once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from controller.config import ControllerConfig, build_parser, parse_duration, parse_rfc1123z
from sealkit import __version__ as _sealkit_version

__all__ = ["App", "ControllerConfig", "build_parser", "main", "parse_duration", "parse_rfc1123z"]

_LOG = logging.getLogger("controller")
_SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# The package's own constant, not importlib.metadata (whose import and distribution scan cost
# 0.1-0.3 s of every start); pyproject.toml and sealkit/__init__.py carry the same version.
VERSION = _sealkit_version


# -- logging -------------------------------------------------------------------------------------
class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str, fmt: str, info_stdout: bool) -> None:
    lvl = {"WARN": "WARNING"}.get(level.upper(), level.upper())
    formatter: logging.Formatter = (
        _JsonFormatter()
        if fmt.lower() == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(getattr(logging, lvl, logging.INFO))
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(formatter)
    if info_stdout:
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(formatter)
        out.addFilter(lambda r: r.levelno < logging.WARNING)
        err.setLevel(logging.WARNING)
        root.addHandler(out)
    root.addHandler(err)
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# -- wiring --------------------------------------------------------------------------------------
def controller_namespace(flag: str) -> str:
    if flag:
        return flag
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(_SA_NAMESPACE_FILE) as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def build_http(kubeconfig: str, context: str, pool: int) -> Any:
    """The apiserver transport (`controller.kube_http`; never the official client, whose
    import alone cost ~1.5 s and ~50 MB): ``--kubeconfig`` if given, else in-cluster."""
    from controller.kube_http import KubeHttp

    if kubeconfig:
        return KubeHttp.from_kubeconfig(kubeconfig, context, pool_size=pool)
    return KubeHttp.in_cluster(pool_size=pool)


class App:
    """The running controller; `main()` builds one, tests may build one in-process."""

    def __init__(self, config: ControllerConfig) -> None:
        from controller.executor import ReconcileOptions
        from controller.http_api import ApiOptions, serve_api, serve_metrics
        from controller.key_manager import KeyManager, KeyOptions
        from controller.keyring import KeyRing
        from controller.kube_gateway import RealKubeGateway
        from controller.metrics import Metrics
        from controller.runner import SealedSecretController
        from controller.supervisor import Supervisor
        from controller.write_guard import WritePolicy

        self.config = cfg = config
        self.namespace = controller_namespace(cfg.namespace)
        extra = cfg.extra_namespaces
        self.http = build_http(
            cfg.kubeconfig, cfg.context, pool=cfg.workers + 2 * (len(extra) + 1) + 16
        )
        self.gw = RealKubeGateway(self.http, qps=cfg.kubeclient_qps, burst=cfg.kubeclient_burst)
        self.metrics = Metrics(revision=VERSION, omit_secret_labels=cfg.metrics_omit_secret_labels)
        self.keyring = KeyRing(order_priority=cfg.key_order_priority)
        self.keys = KeyManager(
            self.gw,
            self.keyring,
            KeyOptions(
                namespace=self.namespace,
                prefix=cfg.key_prefix,
                bits=cfg.key_size,
                ttl=cfg.key_ttl,
                cn=cfg.my_cn,
                renew_period=cfg.key_renew_period,
                cutoff=cfg.key_cutoff_time,
                labels=cfg.privatekey_labels,
                annotations=cfg.privatekey_annotations,
            ),
        )
        if cfg.key_wrap:
            from controller.key_wrap import KeyWrapper, parse_wrap
            from controller.vault_login import VaultLogin

            try:
                mount, key = parse_wrap(cfg.key_wrap)
                login = VaultLogin.from_env(role=cfg.key_wrap_vault_role)
            except ValueError as exc:
                raise ValueError(f"--key-wrap: {exc}") from None
            self.keys.use_wrap(KeyWrapper(login, mount, key, gateway=self.gw))
        if cfg.key_backup:
            from controller.key_backup import BackupGate, parse_target

            self.keys.use_backup(
                BackupGate(
                    self.gw,
                    parse_target(
                        cfg.key_backup,
                        gateway=self.gw,
                        controller_namespace=self.namespace,
                        vault_role=cfg.key_backup_vault_role,
                    ),
                    self.namespace,
                    registry=self.metrics.registry,
                    loaded=lambda: [e.secret_name for e in self.keyring.entries()],
                )
            )
        namespaces: list[str] | None = None
        if not cfg.all_namespaces or extra:
            namespaces = []
            for ns in [self.namespace, *extra]:
                if ns in namespaces:
                    continue
                if ns != self.namespace and not self.gw.namespace_exists(ns):
                    _LOG.error("namespace %s does not exist: not watched", ns)
                    continue
                namespaces.append(ns)
        self.controller = SealedSecretController(
            self.gw,
            self.keyring,
            namespaces=namespaces,
            label_selector=cfg.label_selector,
            metrics=self.metrics,
            workers=cfg.workers,
            max_retries=cfg.max_unseal_retries,
            skip_recreate=cfg.skip_recreate,
            options=ReconcileOptions(
                update_status=cfg.update_status,
                accept_v1_data=cfg.accept_deprecated_v1_data,
                old_gc_behavior=cfg.old_gc_behavior,
                async_events=True,
                write_policy=WritePolicy(self.namespace, cfg.key_prefix),
            ),
        )
        self.keyring.on_change(lambda: self.metrics.set_key_usage(self.keyring.usage_counts()))
        self.stopping = threading.Event()
        self.elector: Any = None
        self._serve_api, self._serve_metrics, self._api_options = (
            serve_api,
            serve_metrics,
            (
                ApiOptions(
                    rate_limit=cfg.rate_limit,
                    rate_limit_burst=cfg.rate_limit_burst,
                    read_timeout=cfg.read_timeout.total_seconds(),
                    write_timeout=cfg.write_timeout.total_seconds(),
                    trusted_proxies=tuple(
                        p.strip() for p in cfg.trusted_proxies.split(",") if p.strip()
                    ),
                )
            ),
        )
        self.api: Any = None
        self.metrics_server: Any = None
        self.supervisor = Supervisor()

    def _supervise(self) -> None:
        """Every long-running thread: alive, or not meant to run (stopping, not leading)."""
        sup = self.supervisor

        def alive(get: Any) -> Any:
            def probe() -> bool:
                thread = get()
                return self.stopping.is_set() or thread is None or thread.is_alive()

            return probe

        for inf in [*self.controller.informers(), *self.keys.informers]:
            sup.watch(f"informer {inf.name}", alive(lambda inf=inf: getattr(inf, "_thread", None)))
        sup.watch("http-api", alive(lambda: self.api and self.api.thread))
        sup.watch("http-metrics", alive(lambda: self.metrics_server and self.metrics_server.thread))
        sup.watch(
            "key-manager",
            alive(
                lambda: (
                    getattr(self.keys, "_thread", None)
                    if getattr(self.keys, "_leading", False)
                    else None
                )
            ),
        )
        sup.watch(
            "lease-elector", alive(lambda: self.elector and getattr(self.elector, "_thread", None))
        )
        sup.watch(
            "reconcile workers", lambda: self.stopping.is_set() or self.controller.workers_alive()
        )

    def healthy(self) -> bool:
        return self.supervisor.healthy()

    def ready(self) -> bool:
        return self.keyring.has_keys() and self.controller.synced() and self.healthy()

    def start(self) -> None:
        self.supervisor.install()
        self.keys.load()
        self.keys.watch()
        self.controller.start_informers()
        self._supervise()
        self.api = self._serve_api(
            self.config.listen_addr,
            keys=self.keyring,
            ready=self.ready,
            healthy=self.healthy,
            metrics=self.metrics,
            options=self._api_options,
        )
        self.metrics_server = self._serve_metrics(
            self.config.listen_metrics_addr,
            metrics=self.metrics,
            timeout=self.config.read_timeout.total_seconds(),
        )
        if not self.controller.wait_synced(60):
            _LOG.warning("caches not synced after 60s; continuing (informers keep retrying)")
        if self.config.leader_elect:
            from controller.leader import LeaseApi, LeaseElector

            self.elector = LeaseElector(
                LeaseApi(self.gw),
                namespace=self.namespace,
                name=self.config.leader_election_id,
                on_started_leading=self._start_leading,
                on_stopped_leading=self._stop_leading,
                status_sink=self.metrics,
            )
            self.elector.start()
        else:
            self._start_leading()

    def _start_leading(self) -> None:
        _LOG.info("leading: reconciling and managing keys")
        self.keys.start_leading()
        self.controller.start_workers()

    def _stop_leading(self) -> None:
        _LOG.info("not leading any more: stopping reconcile workers")
        self.controller.stop_workers()
        self.keys.stop_leading()

    def shutdown(self) -> None:
        """SIGTERM order: stop work, finish in flight, release the Lease, watches, HTTP."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self.stopping.set()
        self.controller.stop_workers(timeout=10.0)
        self.keys.stop_leading()
        if self.elector is not None:
            self.elector.stop(release=True, timeout=10.0)
        self.controller.shutdown(timeout=2.0)
        self.keys.stop()
        for server in (self.api, self.metrics_server):
            if server is not None:
                server.shutdown()
        self.supervisor.uninstall()
        _LOG.info("controller stopped")

    def wait(self) -> int:
        """Until SIGTERM/SIGINT (0) or a supervised thread's death (1), then shut down."""
        code = 0
        while not self.stopping.wait(0.5):
            if self.supervisor.died.is_set() or not self.supervisor.healthy():
                dead = ", ".join(f"{k} ({v})" for k, v in self.supervisor.dead().items())
                _LOG.error("exiting: supervised thread died: %s", dead)
                code = 1
                break
        self.shutdown()
        return code


def _limit_malloc_arenas() -> None:
    """Cap glibc malloc arenas (like MALLOC_ARENA_MAX=2) before any thread starts.

    Values over 512 bytes (every ciphertext) bypass pymalloc; with a dozen threads glibc would
    grow one arena per thread and fragment them, inflating RSS for no speed gain here.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _trim_heap_forever(stop: threading.Event, period: float = 30.0) -> None:
    """Return freed heap to the OS now and then (glibc keeps it after list/watch churn)."""
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    while not stop.wait(period):
        trim(0)


def main(argv: Sequence[str] | None = None) -> int:
    _limit_malloc_arenas()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"controller version: {VERSION if VERSION.startswith('v') else 'v' + VERSION}")
        return 0
    config = ControllerConfig.from_namespace(args)
    setup_logging(config.log_level, config.log_format, config.log_info_stdout)
    if config.log_format.lower() not in ("text", "json"):
        parser.error("--log-format must be text or json")
    stopping = threading.Event()
    holder: list[App] = []

    def on_term(signum: int, _frame: Any) -> None:
        _LOG.info("received %s: shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def on_usr1(_signum: int, _frame: Any) -> None:
        if holder:
            holder[0].keys.force()

    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, on_usr1)
    try:
        app = App(config)
        holder.append(app)
        app.stopping = stopping
        app.start()
    except Exception as exc:  # startup errors: one line, exit 2 (upstream panics)
        msg = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        _LOG.error("startup failed: %s", msg)
        return 2
    if sys.platform.startswith("linux"):
        threading.Thread(
            target=_trim_heap_forever, args=(stopping,), name="heap-trim", daemon=True
        ).start()
    return app.wait()


if __name__ == "__main__":
    sys.exit(main())
