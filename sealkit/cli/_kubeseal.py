"""``sealkit`` with kubeseal's flags: the click command (the modes live in `_modes`).

Every flag also reads ``SEALED_SECRETS_<FLAG>`` (explicit ``envvar=``); the command line wins.
"""

from __future__ import annotations

from typing import Any

import click

from sealkit.cli._common import cert_options, env
from sealkit.cli._modes import run

__all__ = ["command"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _epilog() -> str:
    return (
        "sealkit subcommands (beyond kubeseal): seal-tree, scan, keygen, set; "
        "run `sealkit <command> --help`."
    )


@click.command(context_settings=_CONTEXT, epilog=_epilog())
@click.option("-f", "--secret-file", envvar=env("secret-file"), default="",
              help="Secret (input) file; default stdin.")
@click.option("-w", "--sealed-secret-file", envvar=env("sealed-secret-file"), default="",
              help="Sealed-secret (output) file, written atomically; .yaml/.yml means YAML.")
@click.option("-o", "--format", "output_format", envvar=env("format"), default=None,
              help="Output format: json (default) or yaml.")
@cert_options
@click.option("--fetch-cert", envvar=env("fetch-cert"), is_flag=True,
              help="Write the certificate to stdout (for later use with --cert).")
@click.option("--scope", envvar=env("scope"), default="strict", show_default=True,
              help="strict, namespace-wide or cluster-wide.")
@click.option("--allow-empty-data", envvar=env("allow-empty-data"), is_flag=True,
              help="Allow a Secret without data/stringData.")
@click.option("--raw", envvar=env("raw"), is_flag=True,
              help="Encrypt one raw value (--from-file or stdin) and print bare base64.")
@click.option("--name", envvar=env("name"), default="",
              help="Name of the sealed secret (required with --raw and strict scope).")
@click.option("--from-file", envvar=env("from-file"), multiple=True,
              help="(only with --raw) [key=]path of the value to encrypt.")
@click.option("--merge-into", envvar=env("merge-into"), default="",
              help="Merge the sealed items into this SealedSecret file (format kept, atomic).")
@click.option("--validate", envvar=env("validate"), is_flag=True,
              help="Check that the controller can decrypt the input SealedSecret(s).")
@click.option("--re-encrypt", "--rotate", "re_encrypt", envvar=env("re-encrypt"), is_flag=True,
              help="Re-encrypt the input SealedSecret(s) with the controller's newest key.")
@click.option("--recovery-unseal", envvar=env("recovery-unseal"), is_flag=True,
              help="Decrypt SealedSecret(s) offline with --recovery-private-key.")
@click.option("--recovery-private-key", envvar=env("recovery-private-key"), multiple=True,
              help="Private key file(s): PEM, key Secret YAML/JSON or a List (comma list or "
              "repeated).")
@click.option("-n", "--namespace", envvar=env("namespace"), default="",
              help="Namespace for the sealed secret (default: the kubeconfig context's).")
@click.option("--version", "show_version", is_flag=True, help="Print the version and exit.")
def command(**opts: Any) -> None:
    """Seal Kubernetes Secrets for the sealed-secrets controller (kubeseal-compatible)."""
    run(opts)
