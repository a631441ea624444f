"""`sealkit seal-tree DIR`: seal every plaintext Secret of a tree, in one process.

Sealing: the certificate is read once (``--cert`` or fetched through the controller, exactly
like the main command), every stale Secret is sealed, and each changed twin
(``foo.yaml`` → ``foo.sealed.yaml``, see `sealkit.tree`) is written atomically. Up-to-date twins
are not touched. Nothing is written if any source file is malformed or any Secret is invalid:
every problem is reported as ``error: file:line: ...`` and the exit status is 1.

``--check`` changes nothing and needs no cluster: it exits 1, listing
``file:line: Secret <ns>/<name>: <reason>`` on stdout, when a plaintext Secret lacks an
up-to-date twin; 0 otherwise. It compares certificates only when ``--cert`` is given.

stdout gets one line per written twin (or per stale Secret under ``--check``); progress
(large trees) and the summary go to stderr. Values never appear in any output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from sealkit.cli._common import cert_options

_PROGRESS_THRESHOLD = 100


class _Progress:
    """`done/total` on stderr: rewritten in place on a TTY, every 10% otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last_step = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < _PROGRESS_THRESHOLD:
            return
        if self.tty:
            sys.stderr.write(f"\rsealing {done}/{total}")
            if done == total:
                sys.stderr.write("\n")
        else:
            step = done * 10 // total
            if step != self.last_step:
                self.last_step = step
                sys.stderr.write(f"sealing {done}/{total}\n")
        sys.stderr.flush()


@click.command(
    "seal-tree",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Seal every plaintext Secret under DIR into foo.sealed.yaml twins (see --check).",
)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@cert_options
@click.option(
    "--scope",
    envvar="SEALED_SECRETS_SCOPE",
    default="strict",
    show_default=True,
    help="strict, namespace-wide or cluster-wide (as the main command).",
)
@click.option(
    "-n",
    "--namespace",
    envvar="SEALED_SECRETS_NAMESPACE",
    default="",
    help="Namespace for Secrets that declare none (default: the kubeconfig context's); "
    "declared namespaces are kept.",
)
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if any twin is stale.")
@click.option("--force", is_flag=True, help="Reseal every Secret, even up-to-date ones.")
@click.option(
    "--exclude",
    multiple=True,
    metavar="PATTERN",
    help="Skip paths matching PATTERN (repeatable; also DIR/.sealkitignore).",
)
@click.option(
    "--digest-key-file",
    envvar="SEALKIT_DIGEST_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HMAC key for the source digests (default DIR/.sealkit/digest.key, created).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=lambda: min(os.cpu_count() or 1, 4),
    show_default="CPUs, at most 4",
    help="Worker processes for big trees (forked; at least 50 files each).",
)
@click.option("--progress/--no-progress", default=True, help="Progress on stderr (big trees).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors (and --check findings).")
@click.option("--debug", is_flag=True, hidden=True)
def command(
    directory: Path,
    scope: str,
    namespace: str,
    check: bool,
    force: bool,
    exclude: tuple[str, ...],
    digest_key_file: Path | None,
    jobs: int,
    progress: bool,
    quiet: bool,
    debug: bool,
    **cert_opts: Any,
) -> int:
    from sealkit._exceptions import InputError
    from sealkit.scopes import parse_scope
    from sealkit.tree import (
        TreeOptions,
        commit_results,
        default_digest_key_path,
        discard_results,
        load_or_create_digest_key,
        new_digest_key,
        run_tree,
        save_digest_key,
    )

    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    ns_cache: dict[str, str] = {}

    def default_namespace() -> str:
        if "ns" not in ns_cache:
            from sealkit._exceptions import ClusterError
            from sealkit.cli._options import ClusterOptions
            from sealkit.cluster import kubeconfig_namespace

            try:
                ns_cache["ns"] = kubeconfig_namespace(ClusterOptions.from_mapping(cert_opts))
            except ClusterError:  # no kubeconfig: each file then needs its own namespace
                ns_cache["ns"] = ""
        return ns_cache["ns"]

    opts = TreeOptions(
        scope=parse_scope(scope),
        namespace=namespace or None,
        default_namespace=default_namespace,
        exclude=exclude,
    )
    key_path = default_digest_key_path(directory, digest_key_file)
    key = load_or_create_digest_key(key_path, create=False)

    from sealkit.cli._common import load_public_key_from_options
    from sealkit.keys import fingerprint as fingerprint_of

    if check:
        fingerprint = None
        if cert_opts.get("cert"):
            fingerprint = fingerprint_of(load_public_key_from_options(cert_opts))
        run = run_tree(directory, opts, key=key, fingerprint=fingerprint, jobs=jobs)
        _print_errors(run.errors)
        return _report_check(run, key_path if key is None else None, quiet) or (
            1 if run.errors else 0
        )

    public_key = load_public_key_from_options(cert_opts)
    fingerprint = fingerprint_of(public_key)
    new_key = key is None
    if key is None:
        key = new_digest_key()
    run = run_tree(
        directory,
        opts,
        key=key,
        fingerprint=fingerprint,
        public_key=public_key,
        force=force,
        jobs=jobs,
        progress=_Progress(progress and not quiet),
    )
    try:
        if run.errors:
            _print_errors(run.errors)
            discard_results(run)
            return 1
        if new_key and run.files:
            save_digest_key(key_path, key)
            if not quiet:
                sys.stderr.write(
                    f"sealkit seal-tree: created digest key {key_path} (keep it out of Git; "
                    "share it with whoever seals this tree)\n"
                )
        written = commit_results(run)
    except BaseException:
        discard_results(run)
        raise
    if not quiet:
        for result in written:
            sys.stdout.write(f"wrote {result.twin} ({len(result.units)} SealedSecret(s))\n")
        for orphan in run.orphans:
            sys.stderr.write(f"warning: {orphan}: its source holds no plaintext Secret\n")
        sealed = sum(f.sealed for f in run.files)
        sys.stderr.write(
            f"sealkit seal-tree: {run.secrets} Secret(s) in {len(run.files)} file(s): "
            f"{sealed} sealed, {run.secrets - sealed} up to date; "
            f"{len(written)} twin(s) written\n"
        )
    return 0


def _print_errors(errors: list[str]) -> None:
    for error in errors:
        sys.stderr.write(f"error: {error}\n")


def _report_check(run: Any, missing_key: Path | None, quiet: bool) -> int:
    problems = 0
    for result in run.files:
        stale = [u for u in result.units if u.reason]
        for unit in stale:
            reason = unit.reason
            if missing_key is not None:
                reason = f"no digest key ({missing_key}); run sealkit seal-tree"
            sys.stdout.write(f"{result.source}:{unit.line}: Secret {unit.ref}: {reason}\n")
        problems += len(stale)
        if result.layout_problem:
            sys.stdout.write(f"{result.twin}: {result.layout_problem}\n")
            problems += 1
    if not quiet:
        for orphan in run.orphans:
            sys.stderr.write(f"warning: {orphan}: its source holds no plaintext Secret\n")
        verdict = "out of date" if problems else "up to date"
        sys.stderr.write(
            f"sealkit seal-tree --check: {run.secrets} Secret(s) in {len(run.files)} file(s); "
            f"{problems} problem(s): {verdict}\n"
        )
    return 1 if problems else 0
