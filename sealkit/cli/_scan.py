"""`sealkit scan [PATHS]`: fail when a plaintext Secret is about to be committed.

Exit status: 0 clean; 1 a plaintext Secret was found (one ``file:line: plaintext Secret
<namespace>/<name>`` line each on stdout, never a value); 2 a file could not be read or parsed
(one ``error: file:line: ...`` line each on stderr) or a bad flag. Findings win over read
errors. Files passed unchecked (Helm templates, secretGenerator files) get a ``warning:`` line
on stderr. ``--format json`` prints one JSON object (findings, errors, warnings) and
``--format sarif`` a SARIF 2.1.0 log, for CI code-scanning integrations; exit codes are the
same in every format. Without PATHS the current directory is walked. Allow-listing:
``--allow PATTERN`` (repeatable) and the ``.sealkitignore`` file of the current directory (or
``--ignore-file``); see `sealkit.scan` for the pattern rules. Used as the ``sealkit-scan``
pre-commit hook.
"""

from __future__ import annotations

import sys

import click


@click.command(
    "scan",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Fail (exit 1) when PATHS hold a plaintext Secret with data or stringData.",
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="PATTERN",
    help="Allow-list paths matching PATTERN (repeatable; same rules as .sealkitignore).",
)
@click.option(
    "--ignore-file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Allow-list file (default: ./.sealkitignore when present).",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Output format of the findings.",
)
@click.option("--debug", is_flag=True, hidden=True)
def command(
    paths: tuple[str, ...],
    allow: tuple[str, ...],
    ignore_file: str | None,
    quiet: bool,
    fmt: str,
    debug: bool,
) -> int:
    from sealkit._exceptions import InputError, UsageError
    from sealkit.scan import IgnoreRules, scan_paths

    try:
        rules = IgnoreRules.load(allow, ignore_file=ignore_file)
    except InputError as exc:
        raise UsageError(f"--ignore-file: {exc.message}") from None
    result = scan_paths(paths or ["."], ignore=rules)
    out = sys.stdout
    if fmt != "text":
        import json

        from sealkit.scan import to_json, to_sarif

        doc = to_json(result) if fmt == "json" else to_sarif(result)
        out.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        out.flush()
        return result.exit_code
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    for finding in result.findings:
        out.write(f"{finding}\n")
    out.flush()
    for error in result.errors:
        sys.stderr.write(f"error: {error}\n")
    if result.findings and not quiet:
        files = len({f.path for f in result.findings})
        sys.stderr.write(
            f"sealkit scan: {len(result.findings)} plaintext Secret(s) in {files} file(s); "
            "seal them (sealkit seal-tree) or allow-list the path (--allow, .sealkitignore)\n"
        )
    return result.exit_code
