"""`sealkit reencrypt-tree DIR`: re-seal every SealedSecret under DIR with the newest key.

* offline: ``--recovery-private-key`` (all keys, the current one included; a backup file holds
  them all) plus the current certificate (``--cert``, or fetched from the controller). Values
  already sealed with the certificate's key are kept, so a second run writes nothing;
* otherwise through the controller's ``/v1/rotate`` (``--controller-url`` or the service proxy),
  which re-seals every value; 429 answers are waited out.

Each file keeps its format byte for byte except the ciphertexts (see `sealkit.keyops`). Every
file is planned before any is written; any error writes nothing (exit 1, one line per problem
on stderr, never a value). ``--check`` (offline only) writes nothing and exits 1 when some
SealedSecret still needs re-encryption: a CI gate after a key rotation. Progress goes to stderr
when it is a terminal; a summary line always does.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from sealkit.cli._common import cert_options


@click.command(
    "reencrypt-tree",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Re-seal every SealedSecret under PATHS with the newest key.",
)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--recovery-private-key",
    "key_files",
    multiple=True,
    help="Private key file(s) for offline re-encryption (repeatable or comma list).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if a SealedSecret is not sealed with the newest key.",
)
@cert_options
def command(
    paths: tuple[str, ...], key_files: tuple[str, ...], check: bool, **cert_opts: Any
) -> int:
    from sealkit._exceptions import UsageError
    from sealkit.cli._keys import Progress, read_key_files
    from sealkit.cli._options import ClusterOptions
    from sealkit.files import atomic_write
    from sealkit.keyops import find_sealed, load_keyset, plan_offline, plan_online, retry_throttled
    from sealkit.scan import read_file_text

    if check and not key_files:
        raise UsageError(
            "--check needs --recovery-private-key (the controller cannot say "
            "which key sealed a value)"
        )
    refs, skipped = find_sealed(paths)
    for path in skipped:
        sys.stderr.write(f"warning: {path}: not YAML/JSON, skipped\n")
    progress = Progress("reencrypt-tree", len(refs))
    fingerprint: str | None = None
    if key_files:
        from sealkit.cli._common import load_public_key_from_options
        from sealkit.keys import fingerprint as fp_of

        keyset = load_keyset(read_key_files(key_files))
        public_key = load_public_key_from_options(cert_opts)
        fingerprint = fp_of(public_key)
        plan = plan_offline(refs, keyset, public_key, fingerprint, progress=progress)
    else:
        from sealkit.cli._common import gateway_from_options

        plan = plan_online(
            refs,
            gateway_from_options(ClusterOptions.from_mapping(cert_opts)),
            call=retry_throttled,
            progress=progress,
        )
    for err in plan.errors:
        sys.stderr.write(f"error: {err}\n")
    if plan.errors:
        sys.stderr.write(f"error: {len(plan.errors)} problem(s); nothing written\n")
        return 1
    stale = plan.stale
    if check:
        for ref in stale:
            sys.stdout.write(f"needs re-encryption: {ref}\n")
        sys.stderr.write(
            f"{len(refs) - len(stale)}/{len(refs)} SealedSecret(s) sealed with {fingerprint}\n"
        )
        return 1 if stale else 0
    rendered = [
        (f.path, f.render(read_file_text(f.path), fingerprint))
        for f in plan.files
        if f.replacements
    ]
    for path, text in rendered:
        atomic_write(path, text.encode("utf-8"))
    sys.stderr.write(
        f"re-encrypted {len(stale)} SealedSecret(s) in {len(rendered)} file(s); "
        f"{len(refs) - len(stale)} already current\n"
    )
    return 0
