"""``sealkit`` with kubeseal's flags: the click command (the modes live in `_modes`).

Every kubeseal v0.40.0 flag is accepted: its own, client-go's kubectl overrides
(`sealkit.cli._common.cluster_options`) and klog's logging flags (accepted; ``-v`` is kept,
the others have no effect because sealkit does not log). Each reads
``SEALED_SECRETS_<FLAG>`` (explicit ``envvar=``) except klog's, as in kubeseal; the command
line wins. `normalize_argv` turns pflag spellings click does not know (``--flag=false``,
``-n=ns``, ``-v=3``) into click's, so scripts written for kubeseal parse the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from sealkit.cli._common import cert_options, env
from sealkit.cli._modes import run
from sealkit.cli._options import Options

__all__ = ["BOOL_FLAGS", "command", "normalize_argv"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}  # Go's strconv.ParseBool
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
# Boolean flags, with pflag's `--flag=false` spelled `--no-flag` for click.
BOOL_FLAGS = (
    "fetch-cert",
    "allow-empty-data",
    "raw",
    "validate",
    "re-encrypt",
    "rotate",
    "recovery-unseal",
    "version",
    "insecure-skip-tls-verify",
    "disable-compression",
    "logtostderr",
    "alsologtostderr",
    "legacy_stderr_threshold_behavior",
    "add_dir_header",
    "skip_headers",
    "one_output",
    "skip_log_headers",
)
_SHORT_VALUED = ("-n", "-o", "-w", "-f", "-v")


def normalize_argv(args: Sequence[str]) -> list[str]:
    """pflag's spellings in click's: ``--b=false`` -> ``--no-b``, ``-n=x``/``-v3`` -> ``-n x``."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        if eq and name.startswith("--") and name[2:] in BOOL_FLAGS:
            if value in _TRUE:
                out.append(name)
                continue
            if value in _FALSE:
                out.append("--no-" + name[2:])
                continue
        if eq and name in _SHORT_VALUED:
            out.extend([name, value])
            continue
        if name == "--v" and eq:
            out.extend(["-v", value])
            continue
        out.append(arg)
    return out


def _flag(name: str, help_text: str, *decls: str, envvar: bool = True) -> Any:
    return click.option(
        f"--{name}/--no-{name}",
        *decls,
        envvar=env(name) if envvar else None,
        default=False,
        help=help_text,
        show_default=False,
    )


def _klog_options(func: Any) -> Any:
    """klog's flags, as kubeseal registers them (no environment variables)."""
    hidden = {"hidden": True}
    options = [
        click.option(
            "-v",
            "--v",
            "verbosity",
            type=int,
            default=0,
            help="Log level verbosity (accepted for kubeseal compatibility).",
        ),
        click.option("--vmodule", default=None, **hidden),
        click.option("--log_dir", default=None, **hidden),
        click.option("--log_file", default=None, **hidden),
        click.option("--log_file_max_size", default=None, **hidden),
        click.option("--stderrthreshold", default=None, **hidden),
        click.option("--alsologtostderrthreshold", default=None, **hidden),
        click.option("--log_backtrace_at", default=None, **hidden),
    ]
    for name in (
        "logtostderr",
        "alsologtostderr",
        "legacy_stderr_threshold_behavior",
        "add_dir_header",
        "skip_headers",
        "one_output",
        "skip_log_headers",
    ):
        options.append(click.option(f"--{name}/--no-{name}", default=None, **hidden))
    for option in reversed(options):
        func = option(func)
    return func


@click.command(
    context_settings=_CONTEXT,
    epilog=(
        "sealkit subcommands (beyond kubeseal): seal-tree, scan, keygen, set; "
        "run `sealkit <command> --help`."
    ),
)
@click.option(
    "-f",
    "--secret-file",
    envvar=env("secret-file"),
    default="",
    help="Secret (input) file; default stdin.",
)
@click.option(
    "-w",
    "--sealed-secret-file",
    envvar=env("sealed-secret-file"),
    default="",
    help="Sealed-secret (output) file, written atomically; .yaml/.yml means YAML.",
)
@click.option(
    "-o",
    "--format",
    "output_format",
    envvar=env("format"),
    default=None,
    help="Output format: json (default) or yaml.",
)
@cert_options
@_flag("fetch-cert", "Write the certificate to stdout (for later use with --cert).")
@click.option(
    "--scope",
    envvar=env("scope"),
    default="strict",
    show_default=True,
    help="strict, namespace-wide or cluster-wide.",
)
@_flag("allow-empty-data", "Allow a Secret without data/stringData.")
@_flag("raw", "Encrypt one raw value (--from-file or stdin) and print bare base64.")
@click.option(
    "--name",
    envvar=env("name"),
    default="",
    help="Name of the sealed secret (required with --raw and strict scope).",
)
@click.option(
    "--from-file",
    envvar=env("from-file"),
    multiple=True,
    help="(only with --raw) [key=]path of the value to encrypt.",
)
@click.option(
    "--merge-into",
    envvar=env("merge-into"),
    default="",
    help="Merge the sealed items into this SealedSecret file (format kept, atomic).",
)
@_flag("validate", "Check that the controller can decrypt the input SealedSecret(s).")
@_flag("re-encrypt", "Re-encrypt the input SealedSecret(s) with the controller's newest key.")
@click.option(
    "--rotate/--no-rotate",
    envvar=env("rotate"),
    default=False,
    hidden=True,
    help="Deprecated alias of --re-encrypt.",
)
@_flag("recovery-unseal", "Decrypt SealedSecret(s) offline with --recovery-private-key.")
@click.option(
    "--recovery-private-key",
    envvar=env("recovery-private-key"),
    multiple=True,
    help="Private key file(s): PEM, key Secret YAML/JSON or a List (comma list or repeated).",
)
@click.option(
    "-n",
    "--namespace",
    envvar=env("namespace"),
    default="",
    help="Namespace for the sealed secret (default: the kubeconfig context's).",
)
@click.option(
    "--version/--no-version", "show_version", default=False, help="Print the version and exit."
)
@_klog_options
def command(**params: Any) -> None:
    """Seal Kubernetes Secrets for the sealed-secrets controller (kubeseal-compatible)."""
    if params.pop("rotate", False):
        params["re_encrypt"] = True
    run(Options.from_mapping(params))
