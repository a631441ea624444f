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
@click.option(
    "--clusters",
    "clusters_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Seal for every cluster of this YAML file (name: {cert, dir}); not with --cert.",
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
    clusters_file: Path | None,
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
        default_digest_key_path,
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
    targets = _targets(directory, clusters_file, check, cert_opts)
    key_path = default_digest_key_path(directory, digest_key_file)
    key = load_or_create_digest_key(key_path, create=False)

    if check:
        reporter = _CheckReport(key_path if key is None else None)
        run = run_tree(directory, opts, key=key, targets=targets, jobs=jobs, on_result=reporter)
        _print_errors(run)
        return _report_check(run, reporter, len(targets), quiet) or (1 if run.error_count else 0)

    new_key = key is None
    if key is None:
        key = new_digest_key()
    run = run_tree(
        directory,
        opts,
        key=key,
        targets=targets,
        force=force,
        jobs=jobs,
        progress=_Progress(progress and not quiet),
    )
    try:
        if run.error_count:
            _print_errors(run)
            run.staged.discard()
            return 1
        if new_key and run.files:
            save_digest_key(key_path, key)
            if not quiet:
                sys.stderr.write(
                    f"sealkit seal-tree: created digest key {key_path} (keep it out of Git; "
                    "share it with whoever seals this tree)\n"
                )

        def announce(entry: Any) -> None:
            if not quiet:
                sys.stdout.write(f"wrote {entry.twin} ({entry.documents} SealedSecret(s))\n")

        written = run.staged.commit(announce)
    except BaseException:
        run.staged.discard()
        raise
    if not quiet:
        _print_orphans(run)
        k = len(targets) if clusters_file else 1
        for_clusters = f" for {k} cluster(s)" if clusters_file else ""
        sys.stderr.write(
            f"sealkit seal-tree: {run.secrets // k} Secret(s) in {run.files // k} file(s)"
            f"{for_clusters}: {run.sealed} sealed, {run.secrets - run.sealed} up to date; "
            f"{written} twin(s) written\n"
        )
    return 0


def _targets(
    directory: Path, clusters_file: Path | None, check: bool, cert_opts: dict[str, Any]
) -> list[Any]:
    """The twin sets to write or check: one plain set, or one per cluster of the file."""
    from sealkit._exceptions import UsageError
    from sealkit.cli._common import load_public_key_from_options
    from sealkit.keys import fingerprint as fingerprint_of
    from sealkit.tree import Target

    if clusters_file is None:
        if check and not cert_opts.get("cert"):
            return [Target()]  # --check without --cert: certificates are not compared
        public_key = load_public_key_from_options(cert_opts)
        fingerprint = fingerprint_of(public_key)
        return [Target("", None if check else public_key, fingerprint)]
    if cert_opts.get("cert"):
        raise UsageError("--clusters names each cluster's certificate; not with --cert")
    from sealkit.clusters import load_clusters

    targets = []
    for entry in load_clusters(clusters_file, directory):
        if check and entry.cert_is_url:  # --check needs no cluster: URLs are not fetched
            targets.append(Target(entry.name, out_dir=entry.out_dir))
            continue
        public_key = load_public_key_from_options({**cert_opts, "cert": entry.cert})
        fingerprint = fingerprint_of(public_key)
        targets.append(
            Target(entry.name, None if check else public_key, fingerprint, entry.out_dir)
        )
    return targets


def _print_errors(run: Any) -> None:
    for error in run.errors:
        sys.stderr.write(f"error: {error}\n")
    if run.error_count > len(run.errors):
        sys.stderr.write(f"error: ... and {run.error_count - len(run.errors)} more error(s)\n")


def _print_orphans(run: Any) -> None:
    for orphan in run.orphans:
        sys.stderr.write(f"warning: {orphan}: its source holds no plaintext Secret\n")
    if run.orphan_count > len(run.orphans):
        more = run.orphan_count - len(run.orphans)
        sys.stderr.write(f"warning: ... and {more} more twin(s) without a source\n")


class _CheckReport:
    """`--check` findings, printed as each file's result arrives (nothing is kept)."""

    def __init__(self, missing_key: Path | None) -> None:
        self.missing_key = missing_key
        self.problems = 0

    def __call__(self, result: Any) -> None:
        for unit in result.units:
            if not unit.reason:
                continue
            reason = unit.reason
            if self.missing_key is not None:
                reason = f"no digest key ({self.missing_key}); run sealkit seal-tree"
            where = f" for cluster {result.target}" if result.target else ""
            sys.stdout.write(f"{result.source}:{unit.line}: Secret {unit.ref}{where}: {reason}\n")
            self.problems += 1
        if result.layout_problem:
            sys.stdout.write(f"{result.twin}: {result.layout_problem}\n")
            self.problems += 1


def _report_check(run: Any, report: _CheckReport, clusters: int, quiet: bool) -> int:
    if not quiet:
        _print_orphans(run)
        verdict = "out of date" if report.problems else "up to date"
        secrets = run.secrets // max(1, clusters)
        sys.stderr.write(
            f"sealkit seal-tree --check: {secrets} Secret(s) in {run.files // max(1, clusters)} "
            f"file(s); {report.problems} problem(s): {verdict}\n"
        )
    return 1 if report.problems else 0
