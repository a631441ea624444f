"""A click-free parser for the most common invocation: seal offline with ``--cert``.

Importing click costs about as much as everything else a seal needs, and the cold start is
benchmarked against Go's kubeseal. `parse_fast` understands only a conservative subset and
returns None for anything else, and click then parses the command line as usual. The subset:

    --cert FILE|URL  -f/--secret-file  -w/--sealed-secret-file  -o/--format  --scope
    -n/--namespace  --name  --allow-empty-data  (``--flag value`` or ``--flag=value``)

It also declines when any ``SEALED_SECRETS_*``/``SEALKIT_*`` variable is set, when ``--cert``
is missing, or when a value looks like a flag, so both parsers always agree on the result
(``tests/sealkit/test_cli_fast.py`` checks that they do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
}
_FLAGS = {"--allow-empty-data": "allow_empty_data"}


def parse_fast(args: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The options dict for ``args``, or None when click must parse them."""
    if any(k.startswith(("SEALED_SECRETS_", "SEALKIT_")) for k in environ):
        return None
    from sealkit.cli._modes import DEFAULTS

    opts = dict(DEFAULTS)
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
    if not opts["cert"]:
        return None
    return opts
