"""Read kubeconfig files as kubectl/client-go do, without the kubernetes client.

Importing the kubernetes client costs several times kubeseal's whole run, and a cluster call
of the CLI needs one request. This module resolves *where and how* to connect; the request
itself is `sealkit.kubehttp`. Covered, following client-go's ``clientcmd``:

* loading: ``--kubeconfig`` (must exist), else ``$KUBECONFIG`` (a path list, merged: the
  first file to define a name wins, the first non-empty ``current-context`` wins), else
  ``~/.kube/config``; with none of them, the in-cluster service account;
* overrides: ``--context``, ``--cluster``, ``--user``, ``-n``, ``--server``,
  ``--certificate-authority``, ``--insecure-skip-tls-verify`` (clears the CA, as in
  client-go), ``--tls-server-name``, ``--proxy-url``, ``--client-certificate``,
  ``--client-key``, ``--token``, ``--username``/``--password``, ``--as``, ``--as-group``,
  ``--as-uid``;
* credentials: client certificates (file or ``-data``), ``token``/``tokenFile``, basic auth,
  ``exec`` plugins (run by `sealkit.kubehttp`), the ``oidc`` auth-provider's ``id-token``.

Relative paths in a kubeconfig are relative to that file, as in client-go.
"""

from __future__ import annotations

import base64
import os

from sealkit._exceptions import ClusterError
from sealkit._record import TYPE_CHECKING, Record

if TYPE_CHECKING:
    from typing import Any

    from sealkit.cluster_options import ClusterOptions

__all__ = ["RestConfig", "load_raw", "namespace_of", "rest_config"]

_SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_NO_CONFIG = (
    "invalid configuration: no configuration has been provided, try setting "
    "KUBERNETES_MASTER environment variable"
)


class RestConfig(Record):
    """Everything needed for one request to the apiserver (a NamedTuple, `Record`: no
    dataclasses or typing import on the cold start of a cluster call)."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    tls_server_name: str = ""
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    token: str = ""
    username: str = ""
    password: str = ""
    exec_config: dict[str, Any] | None = None
    proxy_url: str = ""
    impersonate: str = ""
    impersonate_uid: str = ""
    impersonate_groups: tuple[str, ...] = ()
    impersonate_extra: dict[str, tuple[str, ...]] = {}  # noqa: RUF012 - never mutated
    cluster_info: dict[str, Any] = {}  # noqa: RUF012 - for exec provideClusterInfo


class _Raw:
    """The merged kubeconfig files."""

    def __init__(self) -> None:
        self.clusters: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.contexts: dict[str, dict[str, Any]] = {}
        self.current_context = ""
        self.found = False


def _paths(opts: ClusterOptions) -> tuple[list[str], bool]:
    if opts.kubeconfig:
        return [opts.kubeconfig], True
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p], False
    return [os.path.expanduser("~/.kube/config")], False


def _absolute(entry: dict[str, Any], keys: tuple[str, ...], base: str) -> dict[str, Any]:
    out = dict(entry)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            out[key] = os.path.join(base, value)
    return out


def _parse(data: bytes, path: str) -> Any:
    """The document in a kubeconfig file. `sealkit.fastyaml` reads what kubectl and
    the cloud CLIs write without importing PyYAML (a third of kubeseal's whole run); PyYAML's
    C loader reads everything else, and is the authority on what YAML means."""
    from sealkit.fastyaml import Unsupported, load

    try:
        return load(data)
    except Unsupported:
        pass
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(data, Loader=loader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError):
        raise ClusterError(f'error loading config file "{path}": malformed YAML') from None


def load_raw(opts: ClusterOptions) -> _Raw:
    """The merged kubeconfig(s), with file paths made absolute."""
    raw = _Raw()
    paths, explicit = _paths(opts)
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            if explicit:
                raise ClusterError(f"stat {path}: no such file or directory") from None
            continue
        except OSError as exc:
            raise ClusterError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
        doc = _parse(data, path)
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ClusterError(f'error loading config file "{path}": not a kubeconfig')
        raw.found = True
        base = os.path.dirname(os.path.abspath(path))
        for section, target, inner, keys in (
            ("clusters", raw.clusters, "cluster", ("certificate-authority",)),
            ("users", raw.users, "user", ("client-certificate", "client-key", "tokenFile")),
            ("contexts", raw.contexts, "context", ()),
        ):
            for entry in doc.get(section) or []:
                if not isinstance(entry, dict) or not entry.get("name"):
                    continue
                name = str(entry["name"])
                if name not in target:  # the first file to define a name wins
                    target[name] = _absolute(dict(entry.get(inner) or {}), keys, base)
        if not raw.current_context and doc.get("current-context"):
            raw.current_context = str(doc["current-context"])
    return raw


def namespace_of(opts: ClusterOptions) -> str:
    """The namespace kubectl would use: ``-n``, else the context's, else ``default``.

    Raises `ClusterError` when there is no configuration at all, as kubeseal does.
    """
    if opts.namespace:
        return opts.namespace
    raw = load_raw(opts)
    if not raw.found and not opts.server and not _in_cluster_available():
        raise ClusterError(_NO_CONFIG)
    if not raw.found and _in_cluster_available():
        try:
            with open(os.path.join(_SA_DIR, "namespace"), encoding="utf-8") as handle:
                return handle.read().strip() or "default"
        except OSError:
            return "default"
    context = raw.contexts.get(opts.context or raw.current_context) or {}
    return str(context.get("namespace") or "default")


def _in_cluster_available() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
        os.path.join(_SA_DIR, "token")
    )


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ClusterError(f"unable to read {what} {path}: {exc.strerror}") from None


def _data(entry: dict[str, Any], key: str, what: str) -> bytes | None:
    if entry.get(f"{key}-data"):
        try:
            return base64.b64decode(str(entry[f"{key}-data"]), validate=False)
        except ValueError:
            raise ClusterError(f"invalid {key}-data in kubeconfig") from None
    if entry.get(key):
        return _read(str(entry[key]), what)
    return None


def _in_cluster() -> RestConfig:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token = _read(os.path.join(_SA_DIR, "token"), "token file").decode().strip()
    ca = _read(os.path.join(_SA_DIR, "ca.crt"), "certificate authority")
    host = f"[{host}]" if ":" in host else host
    return RestConfig(server=f"https://{host}:{port}", ca_data=ca, token=token)


def rest_config(opts: ClusterOptions) -> RestConfig:
    """How to reach the apiserver under ``opts`` (kubectl's merge and override rules)."""
    raw = load_raw(opts)
    if not raw.found and not opts.server:
        if _in_cluster_available():
            return _in_cluster()
        raise ClusterError(_NO_CONFIG)
    context_name = opts.context or raw.current_context
    if opts.context and opts.context not in raw.contexts:
        raise ClusterError(f"context was not found for specified context: {opts.context}")
    context = raw.contexts.get(context_name) or {}
    cluster_name = opts.cluster or str(context.get("cluster") or "")
    user_name = opts.user or str(context.get("user") or "")
    if opts.cluster and opts.cluster not in raw.clusters:
        raise ClusterError(f'cluster "{opts.cluster}" does not exist')
    if opts.user and opts.user not in raw.users:
        raise ClusterError(f'auth info "{opts.user}" does not exist')
    cluster = dict(raw.clusters.get(cluster_name) or {})
    user = dict(raw.users.get(user_name) or {})

    server = opts.server or str(cluster.get("server") or "")
    if not server:
        raise ClusterError(_NO_CONFIG)
    if opts.insecure_skip_tls_verify or opts.certificate_authority:
        # client-go: either override replaces the CA and the skip setting together
        cluster.pop("certificate-authority-data", None)
        cluster["certificate-authority"] = opts.certificate_authority
        cluster["insecure-skip-tls-verify"] = opts.insecure_skip_tls_verify
    ca = _data(cluster, "certificate-authority", "certificate authority")
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    if ca and insecure:
        raise ClusterError(
            "invalid configuration: specifying a root certificates file with "
            "the insecure flag is not allowed"
        )

    if opts.client_certificate:
        user.pop("client-certificate-data", None)
        user["client-certificate"] = opts.client_certificate
    if opts.client_key:
        user.pop("client-key-data", None)
        user["client-key"] = opts.client_key
    token = opts.token or str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        token = _read(str(user["tokenFile"]), "token file").decode().strip()
    provider = user.get("auth-provider") or {}
    if not token and isinstance(provider, dict) and provider.get("name") == "oidc":
        token = str((provider.get("config") or {}).get("id-token") or "")
    extra = user.get("as-user-extra") or {}
    return RestConfig(
        server=server.rstrip("/"),
        ca_data=ca,
        insecure=insecure,
        tls_server_name=opts.tls_server_name or str(cluster.get("tls-server-name") or ""),
        client_cert_data=_data(user, "client-certificate", "client certificate"),
        client_key_data=_data(user, "client-key", "client key"),
        token=token,
        username=opts.username or str(user.get("username") or ""),
        password=opts.password or str(user.get("password") or ""),
        exec_config=user.get("exec") if isinstance(user.get("exec"), dict) else None,
        proxy_url=opts.proxy_url or str(cluster.get("proxy-url") or ""),
        impersonate=opts.as_user or str(user.get("as") or ""),
        impersonate_uid=opts.as_uid or str(user.get("as-uid") or ""),
        impersonate_groups=opts.as_group or tuple(str(g) for g in user.get("as-groups") or ()),
        impersonate_extra={str(k): tuple(str(x) for x in (v or ())) for k, v in extra.items()}
        if isinstance(extra, dict)
        else {},
        cluster_info={
            k: v
            for k, v in cluster.items()
            if k
            in (
                "server",
                "certificate-authority-data",
                "insecure-skip-tls-verify",
                "tls-server-name",
                "proxy-url",
            )
        },
    )
