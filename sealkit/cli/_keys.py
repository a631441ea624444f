"""`sealkit keys ...`: key lifecycle commands (see docs/keys.md).

``keys report PATHS...`` says which key fingerprint opens each SealedSecret of a tree:

* offline, with ``--recovery-private-key`` (repeatable; a PEM, a key Secret, or a backup file
  holding a ``List`` of them);
* otherwise through the controller's ``/v1/verify`` (``--controller-url`` or the apiserver's
  service proxy), which only says whether it opens, not with which key; 429 answers are waited
  out.

Output is a table (or ``-o json``) of file:line, namespace/name and fingerprints, then one line
per key with the number of SealedSecrets it opens. No value, ciphertext or key material is ever
printed. Exit 0 when every SealedSecret opens, 1 when some value opens with no key (listed),
2 for usage errors. Progress goes to stderr when it is a terminal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sealkit.cli._common import cert_options


class Progress:
    """`label: n/total` on stderr, redrawn in place on a terminal; silent otherwise."""

    def __init__(self, label: str, total: int, *, enabled: bool | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def __call__(self, n: int) -> None:
        self.done += n
        if self.enabled and (self.done == self.total or self.done % 10 == 0):
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total}")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def read_key_files(paths: tuple[str, ...]) -> list[bytes]:
    from sealkit._exceptions import InputError
    from sealkit.cli._common import split_list

    blobs = []
    for p in split_list(paths):
        try:
            blobs.append(Path(p).read_bytes())
        except OSError as exc:
            raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    return blobs


@click.group("keys", context_settings={"help_option_names": ["-h", "--help"]},
             help="Key lifecycle: which key opens what (report).")
def command() -> None:
    pass


@command.command("report", help="Which key fingerprint opens each SealedSecret under PATHS.")
@click.argument("paths", nargs=-1, required=True)
@click.option("--recovery-private-key", "key_files", multiple=True,
              help="Private key file(s) for an offline report (repeatable or comma list).")
@click.option("-o", "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@cert_options
def report(paths: tuple[str, ...], key_files: tuple[str, ...], fmt: str,
           **cert_opts: Any) -> int:
    from sealkit.keyops import (
        find_sealed,
        load_keyset,
        report_offline,
        report_online,
        retry_throttled,
        summarise,
    )

    refs, skipped = find_sealed(paths)
    for path in skipped:
        sys.stderr.write(f"warning: {path}: not YAML/JSON, skipped\n")
    progress = Progress("keys report", len(refs))
    known: tuple[str, ...] = ()
    if key_files:
        keyset = load_keyset(read_key_files(key_files))
        known = keyset.fingerprints
        rows = report_offline(refs, keyset, progress=progress)
    else:
        from sealkit.cli._common import gateway_from_options

        gateway = gateway_from_options(cert_opts)
        rows = report_online(refs, gateway, progress=progress, call=retry_throttled)
    counts = summarise(rows, known)
    failing = [r for r in rows if not r.ok]
    if fmt == "json":
        out = {"sealedSecrets": [r.as_dict() for r in rows], "keys": counts,
               "unopened": len(failing), "skippedFiles": skipped}
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    else:
        for r in rows:
            where = f"{r.path}:{r.line}"
            what = ",".join(r.fingerprints) or "-"
            extra = ""
            if r.unopened:
                extra = "  NOT OPENED: " + ("all values" if r.unopened == ("*",)
                                            else ", ".join(r.unopened))
            if r.error:
                extra = f"  ERROR: {r.error}"
            ref = f"{r.namespace}/{r.name}" if r.namespace else r.name
            sys.stdout.write(f"{where}\t{ref}\t{what}{extra}\n")
        sys.stdout.write(f"# {len(rows)} SealedSecret(s)\n")
        for fp, n in counts.items():
            label = "opens (key not named by the controller)" if fp == "?" else fp
            sys.stdout.write(f"# {label}: {n}\n")
        if failing:
            sys.stdout.write(f"# not opened by any key: {len(failing)}\n")
    sys.stdout.flush()
    if failing:
        sys.stderr.write(f"error: {len(failing)} SealedSecret(s) have values that no "
                         f"{'given ' if key_files else ''}key opens\n")
        return 1
    return 0
