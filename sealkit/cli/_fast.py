"""A click-free parser for the common invocations: seal (offline with ``--cert``, or through
the cluster) and ``--fetch-cert``.

Importing click costs about as much as everything else a seal needs, and the cold start is
benchmarked against Go's kubeseal. `parse_fast` understands only a conservative subset and
returns None for anything else, and click then parses the command line as usual. The subset:

    --cert FILE|URL  -f/--secret-file  -w/--sealed-secret-file  -o/--format  --scope
    -n/--namespace  --name  --allow-empty-data  --fetch-cert  --kubeconfig  --context
    --controller-name  --controller-namespace  (``--flag value`` or ``--flag=value``)

The same flags' ``SEALED_SECRETS_*`` variables are honoured (the command line wins; an empty
variable counts as unset, as in click). It declines when any other ``SEALED_SECRETS_*`` or
``SEALKIT_CONTROLLER_URL`` variable is set, or when a value looks like a flag, so both parsers
always agree: both build the same frozen `Options`
(``tests/sealkit/test_cli_fast.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sealkit._record import TYPE_CHECKING
from sealkit.cli._options import Options

if TYPE_CHECKING:
    from typing import Any

__all__ = ["parse_fast"]

_VALUED = {
    "--cert": "cert",
    "-f": "secret_file",
    "--secret-file": "secret_file",
    "-w": "sealed_secret_file",
    "--sealed-secret-file": "sealed_secret_file",
    "-o": "output_format",
    "--format": "output_format",
    "--scope": "scope",
    "-n": "namespace",
    "--namespace": "namespace",
    "--name": "name",
    "--kubeconfig": "kubeconfig",
    "--context": "context",
    "--controller-name": "controller_name",
    "--controller-namespace": "controller_namespace",
}
_FLAGS = {"--allow-empty-data": "allow_empty_data", "--fetch-cert": "fetch_cert"}
_ENV = {
    "SEALED_SECRETS_CERT": "cert",
    "SEALED_SECRETS_SECRET_FILE": "secret_file",
    "SEALED_SECRETS_SEALED_SECRET_FILE": "sealed_secret_file",
    "SEALED_SECRETS_FORMAT": "output_format",
    "SEALED_SECRETS_SCOPE": "scope",
    "SEALED_SECRETS_NAMESPACE": "namespace",
    "SEALED_SECRETS_NAME": "name",
    "SEALED_SECRETS_KUBECONFIG": "kubeconfig",
    "SEALED_SECRETS_CONTEXT": "context",
    "SEALED_SECRETS_CONTROLLER_NAME": "controller_name",
    "SEALED_SECRETS_CONTROLLER_NAMESPACE": "controller_namespace",
}
_ENV_FLAGS = {
    "SEALED_SECRETS_ALLOW_EMPTY_DATA": "allow_empty_data",
    "SEALED_SECRETS_FETCH_CERT": "fetch_cert",
}
_TRUE = {"1", "true", "t", "yes", "y", "on"}  # click's BOOL type, lower-cased
_FALSE = {"0", "false", "f", "no", "n", "off"}


def parse_fast(args: Sequence[str], environ: Mapping[str, str]) -> Options | None:
    """The options for ``args``, or None when click must parse them."""
    opts: dict[str, Any] = {}
    for key, value in environ.items():
        if not value or not key.startswith(("SEALED_SECRETS_", "SEALKIT_CONTROLLER_URL")):
            continue
        if key in _ENV:
            opts[_ENV[key]] = value
        elif key in _ENV_FLAGS and value.strip().lower() in _TRUE | _FALSE:
            opts[_ENV_FLAGS[key]] = value.strip().lower() in _TRUE
        else:
            return None
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name in _FLAGS and not eq:
            opts[_FLAGS[name]] = True
            i += 1
            continue
        if name not in _VALUED or (eq and name.startswith("-") and not name.startswith("--")):
            return None
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(args):
                return None
            value = args[i + 1]
            i += 2
        if not value or value.startswith("-"):
            return None
        opts[_VALUED[name]] = value
    return Options.from_mapping(opts)
