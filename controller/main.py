"""`sealkit-controller`: the in-cluster unsealing controller (drop-in for Bitnami's).

Flags are upstream's (compat §11), Go-style (`--flag=value`, booleans as `--flag`,
`--flag=false`), each also read from `SEALED_SECRETS_<FLAG>` (an explicit flag wins). Ours on top:
`--kubeconfig`/`--context` (run outside a pod), `--namespace` (the controller namespace: keys,
Lease, own-namespace watch), `--workers`, `--leader-elect`, `--log-format json`.

Run order: keys loaded and watched, informers started and synced, HTTP servers up (every
replica), then the Lease election: the leader reconciles and generates/renews keys. SIGTERM or
SIGINT: stop taking work, finish in-flight reconciles, release the Lease, stop the watches,
stop HTTP, exit 0. SIGUSR1 makes the leader generate a new key at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["build_parser", "main", "parse_duration", "parse_rfc1123z"]

_LOG = logging.getLogger("controller")
_SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

try:
    from importlib.metadata import version as _pkg_version

    VERSION = _pkg_version("sealkit")
except Exception:  # noqa: BLE001 - running from a source tree
    VERSION = "0.0.0-dev"


# -- value parsers -------------------------------------------------------------------------------
_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Go's `time.ParseDuration` ("720h", "1h30m", "2m", "0")."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DUR_RE.match(s, pos)
        if m is None:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    return timedelta(seconds=sign * total)


def parse_rfc1123z(text: str) -> datetime | None:
    """`--key-cutoff-time`: RFC 1123 with a numeric zone, as `date -R` prints it."""
    if not text.strip():
        return None
    try:
        return datetime.strptime(text.strip(), "%a, %d %b %Y %H:%M:%S %z")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --key-cutoff-time {text!r}: want RFC1123Z, e.g. "
            "'Mon, 02 Jan 2006 15:04:05 -0700'"
        ) from None


def parse_bool(text: str) -> bool:
    v = str(text).strip().lower()
    if v in ("1", "t", "true", "yes", "y", "on"):
        return True
    if v in ("0", "f", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def parse_kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, sep, v = part.partition("=")
        if not sep or not k:
            raise argparse.ArgumentTypeError(f"invalid k=v list entry {part!r}")
        out[k] = v
    return out


# -- flags ---------------------------------------------------------------------------------------
_FLAGS: list[tuple[str, Any, Any, str]] = [
    # name, type, default, help
    ("key-prefix", str, "sealed-secrets-key", "prefix (generateName) of key Secrets"),
    ("key-size", int, 4096, "RSA key size in bits"),
    ("key-ttl", parse_duration, "87600h", "validity of generated certificates"),
    ("my-cn", str, "", "CN of generated certificates"),
    ("key-renew-period", parse_duration, "720h", "new key every period (0 disables)"),
    ("key-order-priority", str, "CertNotBefore", "CertNotBefore or SecretCreationTimestamp"),
    ("key-cutoff-time", parse_rfc1123z, "", "make a new key at start if the newest is older"),
    ("accept-deprecated-v1-data", parse_bool, "true", "accept the v1 spec.data format"),
    ("all-namespaces", parse_bool, "true", "watch all namespaces"),
    ("additional-namespaces", str, "", "comma list of extra namespaces to watch"),
    ("label-selector", str, "", "only SealedSecrets/Secrets matching this selector"),
    ("rate-limit", float, "2", "verify/rotate requests per second per client"),
    ("rate-limit-burst", int, "2", "verify/rotate burst per client"),
    ("update-status", parse_bool, "true", "write status.conditions and observedGeneration"),
    ("watch-for-secrets", parse_bool, "false", "accepted; key Secrets are always watched"),
    ("skip-recreate", parse_bool, "false", "do not re-create Secrets deleted out of band"),
    ("old-gc-behavior", parse_bool, "false", "delete Secrets explicitly, not through the GC"),
    ("max-unseal-retries", int, "5", "retries of a failing SealedSecret"),
    ("kubeclient-qps", float, "5", "client-side API QPS limit (<=0: none)"),
    ("kubeclient-burst", int, "10", "client-side API burst"),
    ("listen-addr", str, ":8080", "API address"),
    ("listen-metrics-addr", str, ":8081", "metrics address"),
    ("read-timeout", parse_duration, "2m", "HTTP read timeout"),
    ("write-timeout", parse_duration, "2m", "HTTP write timeout"),
    ("log-info-stdout", parse_bool, "true", "info logs to stdout, warnings+ to stderr"),
    ("log-level", str, "INFO", "DEBUG, INFO, WARN or ERROR"),
    ("log-format", str, "text", "text or json"),
    ("privatekey-labels", parse_kv, "", "extra labels on key Secrets (k=v,...)"),
    ("privatekey-annotations", parse_kv, "", "annotations on key Secrets (k=v,...)"),
    ("metrics-omit-secret-labels", parse_bool, "false", "no per-object metric series"),
    # ours
    ("kubeconfig", str, "", "kubeconfig path (default: in-cluster config)"),
    ("context", str, "", "kubeconfig context"),
    ("namespace", str, "", "controller namespace (keys, Lease); default $POD_NAMESPACE"),
    ("workers", int, "8", "reconcile worker threads (RSA releases the GIL)"),
    ("leader-elect", parse_bool, "true", "elect a leader on a Lease (HA)"),
    ("leader-election-id", str, "sealed-secrets-controller", "Lease name"),
    ("key-backup", str, "", "back new keys up before use: secret:<ns>, vault:<mount>/<path>, "
     "file:<path> (docs/keys.md)"),
    ("key-backup-vault-role", str, "", "Vault kubernetes-auth role for a vault: backup"),
    ("key-wrap", str, "", "store keys wrapped by Vault transit: transit:<mount>/<key>"),
    ("key-wrap-vault-role", str, "", "Vault kubernetes-auth role for --key-wrap"),
]
_ALIASES = {"rotate-period": "key-renew-period"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sealkit-controller",
                                description="SealedSecrets controller (Bitnami-compatible)")
    for name, typ, default, helptext in _FLAGS:
        env = "SEALED_SECRETS_" + name.upper().replace("-", "_")
        raw = os.environ.get(env, default)
        try:
            value = raw if not isinstance(raw, str) or typ is str else typ(raw)
        except argparse.ArgumentTypeError as exc:
            p.error(f"{env}: {exc}")
        names = [f"--{name}"] + [f"--{a}" for a, t in _ALIASES.items() if t == name]
        kwargs: dict[str, Any] = {"dest": name.replace("-", "_"), "default": value,
                                  "help": f"{helptext} (env {env})", "type": typ}
        if typ is parse_bool:
            kwargs.update(nargs="?", const=True)
        p.add_argument(*names, **kwargs)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    # klog compatibility: accepted and ignored
    p.add_argument("--logtostderr", type=parse_bool, nargs="?", const=True, default=True,
                   help=argparse.SUPPRESS)
    p.add_argument("-v", "--v", dest="klog_v", default="0", help=argparse.SUPPRESS)
    return p


# -- logging -------------------------------------------------------------------------------------
class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(),
               "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str, fmt: str, info_stdout: bool) -> None:
    lvl = {"WARN": "WARNING"}.get(level.upper(), level.upper())
    formatter: logging.Formatter = (
        _JsonFormatter() if fmt.lower() == "json"
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


def build_api_client(kubeconfig: str, context: str, pool: int) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, context=context or None,
                                client_configuration=cfg, persist_config=False)
    else:
        config.load_incluster_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    return client.ApiClient(cfg)


class App:
    """The running controller; `main()` builds one, tests may build one in-process."""

    def __init__(self, args: argparse.Namespace) -> None:
        from controller.executor import ReconcileOptions
        from controller.http_api import ApiOptions, serve_api, serve_metrics
        from controller.key_manager import KeyManager, KeyOptions
        from controller.keyring import KeyRing
        from controller.kube_gateway import RealKubeGateway
        from controller.metrics import Metrics
        from controller.runner import SealedSecretController

        self.args = args
        self.namespace = controller_namespace(args.namespace)
        extra = [n.strip() for n in args.additional_namespaces.split(",") if n.strip()]
        self.api_client = build_api_client(args.kubeconfig, args.context,
                                           pool=args.workers + 2 * (len(extra) + 1) + 16)
        self.gw = RealKubeGateway(self.api_client, qps=args.kubeclient_qps,
                                  burst=args.kubeclient_burst)
        self.metrics = Metrics(revision=VERSION,
                               omit_secret_labels=args.metrics_omit_secret_labels)
        self.keyring = KeyRing(order_priority=args.key_order_priority)
        self.keys = KeyManager(self.gw, self.keyring, KeyOptions(
            namespace=self.namespace, prefix=args.key_prefix, bits=args.key_size,
            ttl=args.key_ttl, cn=args.my_cn, renew_period=args.key_renew_period,
            cutoff=args.key_cutoff_time, labels=args.privatekey_labels,
            annotations=args.privatekey_annotations,
        ))
        if args.key_wrap:
            from controller.key_wrap import KeyWrapper, parse_wrap
            from controller.vault_login import VaultLogin

            try:
                mount, key = parse_wrap(args.key_wrap)
                login = VaultLogin.from_env(role=args.key_wrap_vault_role)
            except ValueError as exc:
                raise ValueError(f"--key-wrap: {exc}") from None
            self.keys.use_wrap(KeyWrapper(login, mount, key, gateway=self.gw))
        if args.key_backup:
            from controller.key_backup import BackupGate, parse_target

            self.keys.use_backup(BackupGate(
                self.gw, parse_target(args.key_backup, gateway=self.gw,
                                      controller_namespace=self.namespace,
                                      vault_role=args.key_backup_vault_role),
                self.namespace, registry=self.metrics.registry,
                loaded=lambda: [e.secret_name for e in self.keyring.entries()]))
        namespaces: list[str] | None = None
        if not args.all_namespaces or extra:
            namespaces = []
            for ns in [self.namespace, *extra]:
                if ns in namespaces:
                    continue
                if ns != self.namespace and not self.gw.namespace_exists(ns):
                    _LOG.error("namespace %s does not exist: not watched", ns)
                    continue
                namespaces.append(ns)
        self.controller = SealedSecretController(
            self.gw, self.keyring, namespaces=namespaces, label_selector=args.label_selector,
            metrics=self.metrics, workers=args.workers, max_retries=args.max_unseal_retries,
            skip_recreate=args.skip_recreate, options=ReconcileOptions(
                update_status=args.update_status, accept_v1_data=args.accept_deprecated_v1_data,
                old_gc_behavior=args.old_gc_behavior, async_events=True),
        )
        self.keyring.on_change(lambda: self.metrics.set_key_usage(self.keyring.usage_counts()))
        self.stopping = threading.Event()
        self.elector: Any = None
        self._serve_api, self._serve_metrics, self._api_options = serve_api, serve_metrics, (
            ApiOptions(rate_limit=args.rate_limit, rate_limit_burst=args.rate_limit_burst,
                       read_timeout=args.read_timeout.total_seconds(),
                       write_timeout=args.write_timeout.total_seconds()))
        self.api: Any = None
        self.metrics_server: Any = None

    def ready(self) -> bool:
        return self.keyring.has_keys() and self.controller.synced()

    def start(self) -> None:
        self.keys.load()
        self.keys.watch()
        self.controller.start_informers()
        self.api = self._serve_api(self.args.listen_addr, keys=self.keyring, ready=self.ready,
                                   metrics=self.metrics, options=self._api_options)
        self.metrics_server = self._serve_metrics(
            self.args.listen_metrics_addr, metrics=self.metrics,
            timeout=self.args.read_timeout.total_seconds())
        if not self.controller.wait_synced(60):
            _LOG.warning("caches not synced after 60s; continuing (informers keep retrying)")
        if self.args.leader_elect:
            from kubernetes.client import CoordinationV1Api

            from controller.leader import LeaseElector

            self.elector = LeaseElector(
                CoordinationV1Api(self.api_client), namespace=self.namespace,
                name=self.args.leader_election_id, on_started_leading=self._start_leading,
                on_stopped_leading=self._stop_leading, status_sink=self.metrics,
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
        _LOG.info("controller stopped")


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
    try:
        args = parser.parse_args(argv)
    except argparse.ArgumentTypeError as exc:  # pragma: no cover - argparse reports these
        parser.error(str(exc))
    if args.version:
        print(f"controller version: {VERSION}")
        return 0
    setup_logging(args.log_level, args.log_format, args.log_info_stdout)
    if args.log_format.lower() not in ("text", "json"):
        parser.error("--log-format must be text or json")
    stopping = threading.Event()
    holder: list[App] = []

    def on_term(signum: int, _frame: Any) -> None:
        _LOG.info("received %s: shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda *_: holder and holder[0].keys.force())
    try:
        app = App(args)
        holder.append(app)
        app.stopping = stopping
        app.start()
    except Exception as exc:  # noqa: BLE001 - startup errors: one line, exit 2 (upstream panics)
        msg = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        _LOG.error("startup failed: %s", msg)
        return 2
    if sys.platform.startswith("linux"):
        threading.Thread(target=_trim_heap_forever, args=(stopping,), name="heap-trim",
                         daemon=True).start()
    while not stopping.wait(0.5):
        pass
    app.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
