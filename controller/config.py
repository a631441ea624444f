"""`sealkit-controller`'s configuration: upstream's flags, parsed once into a frozen object.

Flags are upstream's (compat §11), Go-style (`--flag=value`, booleans as `--flag`,
`--flag=false`), each also read from `SEALED_SECRETS_<FLAG>` (an explicit flag wins). Ours on top:
`--kubeconfig`/`--context` (run outside a pod), `--namespace` (the controller namespace: keys,
Lease, own-namespace watch), `--workers`, `--leader-elect`, `--log-format json`.

`ControllerConfig` is the single list of flags: each field is one flag (``key_prefix`` is
``--key-prefix``), its default is upstream's, and its metadata holds the value parser and the
help text. `App` takes the frozen config, never argparse's mutable Namespace (as
controller-runtime's ``manager.Options`` and upstream's ``Flags`` struct). Example::

    config = ControllerConfig.from_argv(["--key-size", "2048", "--leader-elect=false"])
    assert config.key_size == 2048 and not config.leader_elect
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "ControllerConfig",
    "build_parser",
    "parse_bool",
    "parse_duration",
    "parse_kv",
    "parse_rfc1123z",
]


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


def _flag(default: Any, parse: Callable[[str], Any], help_text: str) -> Any:
    meta = {"parse": parse, "help": help_text}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Every controller flag, typed; defaults are upstream's."""

    key_prefix: str = _flag("sealed-secrets-key", str, "prefix (generateName) of key Secrets")
    key_size: int = _flag(4096, int, "RSA key size in bits")
    key_ttl: timedelta = _flag(
        timedelta(hours=87600), parse_duration, "validity of generated certificates"
    )
    my_cn: str = _flag("", str, "CN of generated certificates")
    key_renew_period: timedelta = _flag(
        timedelta(hours=720), parse_duration, "new key every period (0 disables)"
    )
    key_order_priority: str = _flag(
        "CertNotBefore", str, "CertNotBefore or SecretCreationTimestamp"
    )
    key_cutoff_time: datetime | None = _flag(
        None, parse_rfc1123z, "make a new key at start if the newest is older"
    )
    accept_deprecated_v1_data: bool = _flag(True, parse_bool, "accept the v1 spec.data format")
    all_namespaces: bool = _flag(True, parse_bool, "watch all namespaces")
    additional_namespaces: str = _flag("", str, "comma list of extra namespaces to watch")
    label_selector: str = _flag("", str, "only SealedSecrets/Secrets matching this selector")
    rate_limit: float = _flag(2.0, float, "verify/rotate requests per second per client")
    rate_limit_burst: int = _flag(2, int, "verify/rotate burst per client")
    trusted_proxies: str = _flag(
        "", str, "comma list of CIDRs whose X-Forwarded-For names the client"
    )
    update_status: bool = _flag(True, parse_bool, "write status.conditions and observedGeneration")
    watch_for_secrets: bool = _flag(False, parse_bool, "accepted; key Secrets are always watched")
    skip_recreate: bool = _flag(False, parse_bool, "do not re-create Secrets deleted out of band")
    old_gc_behavior: bool = _flag(
        False, parse_bool, "delete Secrets explicitly, not through the GC"
    )
    max_unseal_retries: int = _flag(5, int, "retries of a failing SealedSecret")
    kubeclient_qps: float = _flag(5.0, float, "client-side API QPS limit (<=0: none)")
    kubeclient_burst: int = _flag(10, int, "client-side API burst")
    listen_addr: str = _flag(":8080", str, "API address")
    listen_metrics_addr: str = _flag(":8081", str, "metrics address")
    read_timeout: timedelta = _flag(timedelta(minutes=2), parse_duration, "HTTP read timeout")
    write_timeout: timedelta = _flag(timedelta(minutes=2), parse_duration, "HTTP write timeout")
    log_info_stdout: bool = _flag(True, parse_bool, "info logs to stdout, warnings+ to stderr")
    log_level: str = _flag("INFO", str, "DEBUG, INFO, WARN or ERROR")
    log_format: str = _flag("text", str, "text or json")
    privatekey_labels: Mapping[str, str] = _flag(
        {}, parse_kv, "extra labels on key Secrets (k=v,...)"
    )
    privatekey_annotations: Mapping[str, str] = _flag(
        {}, parse_kv, "annotations on key Secrets (k=v,...)"
    )
    metrics_omit_secret_labels: bool = _flag(False, parse_bool, "no per-object metric series")
    # ours
    kubeconfig: str = _flag("", str, "kubeconfig path (default: in-cluster config)")
    context: str = _flag("", str, "kubeconfig context")
    namespace: str = _flag("", str, "controller namespace (keys, Lease); default $POD_NAMESPACE")
    workers: int = _flag(8, int, "reconcile worker threads (RSA releases the GIL)")
    leader_elect: bool = _flag(True, parse_bool, "elect a leader on a Lease (HA)")
    leader_election_id: str = _flag("sealed-secrets-controller", str, "Lease name")
    key_backup: str = _flag(
        "",
        str,
        "back new keys up before use: secret:<ns>, vault:<mount>/<path>, "
        "file:<path> (docs/keys.md)",
    )
    key_backup_vault_role: str = _flag("", str, "Vault kubernetes-auth role for a vault: backup")
    key_wrap: str = _flag("", str, "store keys wrapped by Vault transit: transit:<mount>/<key>")
    key_wrap_vault_role: str = _flag("", str, "Vault kubernetes-auth role for --key-wrap")

    @property
    def extra_namespaces(self) -> list[str]:
        return [n.strip() for n in self.additional_namespaces.split(",") if n.strip()]

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> ControllerConfig:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def from_argv(cls, argv: Sequence[str] | None = None) -> ControllerConfig:
        return cls.from_namespace(build_parser().parse_args(argv))


_ALIASES = {"rotate-period": "key-renew-period"}


def build_parser() -> argparse.ArgumentParser:
    """The argparse front of `ControllerConfig` (environment defaults resolved now)."""
    p = argparse.ArgumentParser(
        prog="sealkit-controller", description="SealedSecrets controller (Bitnami-compatible)"
    )
    for f in dataclasses.fields(ControllerConfig):
        name, parse = f.name.replace("_", "-"), f.metadata["parse"]
        env = "SEALED_SECRETS_" + f.name.upper()
        default = {} if f.default is dataclasses.MISSING else f.default
        try:
            value = parse(os.environ[env]) if env in os.environ else default
        except (argparse.ArgumentTypeError, ValueError) as exc:
            p.error(f"{env}: {exc}")
        names = [f"--{name}"] + [f"--{a}" for a, t in _ALIASES.items() if t == name]
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": value,
            "type": parse,
            "help": f"{f.metadata['help']} (env {env})",
        }
        if parse is parse_bool:
            kwargs.update(nargs="?", const=True)
        p.add_argument(*names, **kwargs)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    # klog compatibility: accepted and ignored
    p.add_argument(
        "--logtostderr",
        type=parse_bool,
        nargs="?",
        const=True,
        default=True,
        help=argparse.SUPPRESS,
    )
    p.add_argument("-v", "--v", dest="klog_v", default="0", help=argparse.SUPPRESS)
    return p
