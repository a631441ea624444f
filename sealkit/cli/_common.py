"""Options and helpers shared by sealkit commands that need the sealing certificate.

Subcommand modules reuse them so every command finds the certificate the same way::

    @click.command()
    @cert_options
    def command(**opts):
        public_key = load_public_key_from_options(opts)

`cert_options` adds ``--cert``, ``--controller-name``, ``--controller-namespace``,
``--controller-url``, ``--kubeconfig``, ``--context`` and ``--request-timeout``, each with its
``SEALED_SECRETS_*`` environment variable (``SEALKIT_CONTROLLER_URL`` for our own flag).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sealkit._exceptions import CertError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from sealkit.cluster import ControllerGateway

__all__ = [
    "cert_options",
    "env",
    "gateway_from_options",
    "load_cert_bytes",
    "load_public_key_from_options",
    "parse_duration",
    "split_list",
]

F = TypeVar("F", bound=Callable[..., Any])


def env(flag: str) -> str:
    """kubeseal's environment variable for ``--flag-name``: ``SEALED_SECRETS_FLAG_NAME``."""
    return "SEALED_SECRETS_" + flag.lstrip("-").upper().replace("-", "_")


def cert_options(func: F) -> F:
    """Decorate a click command with the certificate / controller / cluster options."""
    import click

    options = [
        click.option(
            "--cert",
            envvar=env("cert"),
            default="",
            help="Certificate file or URL (http(s)://, file://) to seal with. "
            "Overrides --controller-*.",
        ),
        click.option(
            "--controller-name",
            envvar=env("controller-name"),
            default="sealed-secrets-controller",
            show_default=True,
            help="Name of the sealed-secrets controller Service.",
        ),
        click.option(
            "--controller-namespace",
            envvar=env("controller-namespace"),
            default="kube-system",
            show_default=True,
            help="Namespace of the sealed-secrets controller.",
        ),
        click.option(
            "--controller-url",
            envvar="SEALKIT_CONTROLLER_URL",
            default="",
            help="(sealkit) Talk to the controller at this URL instead of through the "
            "apiserver service proxy.",
        ),
        click.option(
            "--kubeconfig",
            envvar=env("kubeconfig"),
            default="",
            help="Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config).",
        ),
        click.option(
            "--context", envvar=env("context"), default="", help="kubeconfig context to use."
        ),
        click.option(
            "--request-timeout",
            envvar=env("request-timeout"),
            default="30s",
            show_default=True,
            help="Timeout of one request to the apiserver/controller (e.g. 10s, 2m; 0 = none).",
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


def gateway_from_options(opts: Mapping[str, Any]) -> ControllerGateway:
    from sealkit.cluster import DirectGateway, ProxyGateway

    timeout = parse_duration(opts.get("request_timeout") or "30s")
    if opts.get("controller_url"):
        return DirectGateway(opts["controller_url"], timeout=timeout or 30.0)
    return ProxyGateway(
        controller_name=opts.get("controller_name") or "sealed-secrets-controller",
        controller_namespace=opts.get("controller_namespace") or "kube-system",
        kubeconfig=opts.get("kubeconfig") or None,
        context=opts.get("context") or None,
        timeout=timeout,
    )


def load_cert_bytes(opts: Mapping[str, Any]) -> bytes:
    """The certificate PEM from ``--cert`` (path or URL), else from the controller."""
    cert = opts.get("cert") or ""
    if cert:
        if cert.startswith(("http://", "https://", "file://")):
            from sealkit.cluster import fetch_url

            return fetch_url(cert, parse_duration(opts.get("request_timeout") or "30s") or 30.0)
        try:
            with open(os.path.expanduser(cert), "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise CertError(f"cannot read certificate {cert}: {exc.strerror}") from None
    return gateway_from_options(opts).cert_pem()


def load_public_key_from_options(opts: Mapping[str, Any]) -> RSAPublicKey:
    from sealkit.certs import load_public_key

    return load_public_key(load_cert_bytes(opts))
