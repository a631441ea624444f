"""`sealkit set FILE KEY`: add or replace one value of a SealedSecret file, in place.

The value comes from stdin (all bytes, a trailing newline included: use ``printf``, not
``echo``) or ``--from-file``; it is sealed with the file's own scope and written back
atomically with the file's format, comments and key order kept (`sealkit.edit`). When FILE
holds several SealedSecrets, ``--name`` picks one (exit 2 otherwise). The certificate comes
from ``--cert`` or the controller, like the main command. One line on stderr says what
changed; the value is never printed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sealkit.cli._common import cert_options


@click.command(
    "set",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Seal a value from stdin or --from-file into KEY of the SealedSecret in FILE.",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("key")
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the value from this file instead of stdin.",
)
@click.option("--name", default=None, help="Which SealedSecret, when FILE holds several.")
@cert_options
@click.option("--debug", is_flag=True, hidden=True)
def command(
    file: Path,
    key: str,
    from_file: Path | None,
    name: str | None,
    debug: bool,
    **cert_opts: Any,
) -> int:
    from sealkit._exceptions import InputError
    from sealkit.edit import set_value, validate_key
    from sealkit.files import atomic_write
    from sealkit.scan import read_file_text

    validate_key(key)
    text = read_file_text(file)  # before reading the value: fail fast on a wrong path
    if from_file is not None:
        try:
            value = from_file.read_bytes()
        except OSError as exc:
            raise InputError(f"{from_file}: cannot read: {exc.strerror}") from None
    else:
        if sys.stdin.isatty():
            sys.stderr.write("(tty detected: type the value, then Ctrl-D)\n")
        value = sys.stdin.buffer.read()

    from sealkit.cli._common import load_public_key_from_options
    from sealkit.keys import fingerprint

    public_key = load_public_key_from_options(cert_opts)
    result = set_value(
        text,
        key,
        value,
        public_key,
        name=name,
        source=str(file),
        fingerprint=fingerprint(public_key),
    )
    atomic_write(file, result.text.encode("utf-8"))
    ref = f"{result.namespace}/{result.name}" if result.namespace else result.name
    verb = "replaced" if result.replaced else "added"
    sys.stderr.write(f"{verb} key {key} in SealedSecret {ref} ({file})\n")
    return 0
