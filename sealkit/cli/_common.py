"""Options and helpers shared by sealkit commands that need the sealing certificate.

Subcommand modules reuse them so every command finds the certificate the same way::

    @click.command()
    @cert_options
    def command(**opts):
        public_key = load_public_key_from_options(opts)

`cert_options` adds ``--cert``, ``--controller-name``, ``--controller-namespace``,
``--controller-url`` and kubectl's connection overrides (``--kubeconfig``, ``--context``,
``--server``, ``--token``, ``--as``, ...), each with its ``SEALED_SECRETS_*`` environment
variable (``SEALKIT_CONTROLLER_URL`` for our own flag).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

from sealkit._exceptions import CertError, UsageError
from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TypeVar

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from sealkit.cli._options import ClusterOptions
    from sealkit.cluster import ControllerGateway

__all__ = [
    "cert_options",
    "env",
    "gateway_from_options",
    "load_cert_bytes",
    "load_public_key",
    "load_public_key_from_options",
    "parse_duration",
    "split_list",
]

if TYPE_CHECKING:
    F = TypeVar("F", bound=Callable[..., Any])


def env(flag: str) -> str:
    """kubeseal's environment variable for ``--flag-name``: ``SEALED_SECRETS_FLAG_NAME``."""
    return "SEALED_SECRETS_" + flag.lstrip("-").upper().replace("-", "_")


def cert_options(func: F) -> F:
    """Decorate a click command with the certificate / controller / cluster options.

    The cluster options are client-go's kubectl overrides as kubeseal registers them
    (``RecommendedConfigOverrideFlags``), minus ``-n/--namespace``, which each command declares
    itself (seal-tree has its own meaning for it).
    """
    import click

    def text(name: str, help_text: str, default: str = "", **kw: Any) -> Any:
        return click.option(f"--{name}", envvar=env(name), default=default, help=help_text, **kw)

    options = [
        text(
            "cert",
            "Certificate file or URL (http(s)://, file://) to seal with. Overrides --controller-*.",
        ),
        text(
            "controller-name",
            "Name of the sealed-secrets controller Service.",
            "sealed-secrets-controller",
            show_default=True,
        ),
        text(
            "controller-namespace",
            "Namespace of the sealed-secrets controller.",
            "kube-system",
            show_default=True,
        ),
        click.option(
            "--controller-url",
            envvar="SEALKIT_CONTROLLER_URL",
            default="",
            help="(sealkit) Talk to the controller at this URL instead of through the "
            "apiserver service proxy.",
        ),
        text("kubeconfig", "Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config)."),
        text("context", "The name of the kubeconfig context to use."),
        text("cluster", "The name of the kubeconfig cluster to use."),
        text("user", "The name of the kubeconfig user to use."),
        text("server", "The address and port of the Kubernetes API server."),
        text("tls-server-name", "Server name to validate the server certificate against."),
        click.option(
            "--insecure-skip-tls-verify/--no-insecure-skip-tls-verify",
            envvar=env("insecure-skip-tls-verify"),
            default=False,
            help="Do not check the server's certificate (insecure).",
        ),
        text("certificate-authority", "Path to a cert file for the certificate authority."),
        text("client-certificate", "Path to a client certificate file for TLS."),
        text("client-key", "Path to a client key file for TLS."),
        text("token", "Bearer token for authentication to the API server."),
        click.option(
            "--as",
            "as_user",
            envvar=env("as"),
            default="",
            help="Username to impersonate for the operation.",
        ),
        text("as-uid", "UID to impersonate for the operation."),
        click.option(
            "--as-group",
            envvar=env("as-group"),
            multiple=True,
            help="Group to impersonate for the operation (repeatable).",
        ),
        text("username", "Username for basic authentication to the API server."),
        text("password", "Password for basic authentication to the API server."),
        text("proxy-url", "Proxy URL for the connection to the API server."),
        click.option(
            "--disable-compression/--no-disable-compression",
            envvar=env("disable-compression"),
            default=False,
            help="Opt out of response compression (accepted; sealkit never asks "
            "for compressed responses).",
        ),
        text(
            "request-timeout",
            "Timeout of one request to the apiserver/controller (e.g. 10s, 2m; 0 = none).",
            "30s",
            show_default=True,
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_duration(text: str) -> float | None:
    """Seconds for a Go-style duration (``30s``, ``2m``, ``1h30m``, bare ``0``); 0 -> None."""
    text = (text or "0").strip()
    if text.replace(".", "", 1).isdigit():
        seconds = float(text)
    elif text.endswith("s") and text[:-1].isascii() and text[:-1].isdigit():
        seconds = float(text[:-1])  # "30s", the default: no regex to compile on a cluster call
    elif re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+", text):
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        seconds = sum(
            float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
        )
    else:
        raise UsageError(f'invalid argument "{text}" for "--request-timeout" flag')
    return seconds or None


def split_list(values: tuple[str, ...] | list[str] | None) -> list[str]:
    """Flatten repeated and comma-separated flag values (pflag ``strings`` semantics)."""
    return [part for value in values or () for part in value.split(",") if part]


def gateway_from_options(cluster: ClusterOptions) -> ControllerGateway:
    from sealkit.cluster import DirectGateway, ProxyGateway

    timeout = parse_duration(cluster.request_timeout or "30s")
    if cluster.controller_url:
        return DirectGateway(cluster.controller_url, timeout=timeout or 30.0)
    return ProxyGateway(cluster, timeout=timeout)


def load_cert_bytes(cert: str, cluster: ClusterOptions) -> bytes:
    """The certificate PEM from ``--cert`` (path or URL), else from the controller."""
    if cert:
        if cert.startswith(("http://", "https://", "file://")):
            from sealkit.cluster import fetch_url

            return fetch_url(cert, parse_duration(cluster.request_timeout or "30s") or 30.0)
        try:
            with open(os.path.expanduser(cert), "rb") as handle:
                return handle.read()
        except OSError as exc:
            # kubeseal's wording (its integration suite matches "no such file or directory")
            raise CertError(f"open {cert}: {(exc.strerror or '').lower()}") from None
    return gateway_from_options(cluster).cert_pem()


def load_public_key(cert: str, cluster: ClusterOptions) -> RSAPublicKey:
    from sealkit.certs import load_public_key as parse

    return parse(load_cert_bytes(cert, cluster))


def load_public_key_from_options(opts: Mapping[str, Any]) -> RSAPublicKey:
    """For subcommands that take `cert_options` as a click params mapping."""
    from sealkit.cli._options import ClusterOptions

    return load_public_key(opts.get("cert") or "", ClusterOptions.from_mapping(opts))
