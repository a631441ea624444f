"""The ``sealkit`` console script.

kubeseal has no subcommands, so ``alias kubeseal=sealkit`` means the bare command must take
kubeseal's flags (``sealkit -f s.yaml -w out.yaml``). sealkit's own commands are selected by
the FIRST argument only::

    sealkit [kubeseal flags...]        -> sealkit.cli._kubeseal.command
    sealkit seal-tree DIR [opts]       -> SUBCOMMANDS["seal-tree"]
    sealkit scan [PATHS] [opts]        -> SUBCOMMANDS["scan"]

To add a subcommand, write a module ``sealkit/cli/_<name>.py`` exposing a ``click.Command``
called ``command`` and add one line to `SUBCOMMANDS`. Modules are imported only when their
command runs (cold start). Raise `sealkit.SealkitError` subclasses for failures: `main` prints
one ``error: <message>`` line to stderr and exits with the error's ``exit_code`` (1 runtime,
2 usage); click usage errors become exit 2 the same way. Tracebacks appear only with
``--debug`` (or ``SEALKIT_DEBUG=1``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from sealkit.cli._options import Options

__all__ = ["SUBCOMMANDS", "main", "run_click"]

# name -> "module:attribute" of a click.Command; imported lazily.
SUBCOMMANDS: dict[str, str] = {
    "seal-tree": "sealkit.cli._tree:command",
    "scan": "sealkit.cli._scan:command",
    "keygen": "sealkit.cli._keygen:command",
    "set": "sealkit.cli._set:command",
    "keys": "sealkit.cli._keys:command",
    "reencrypt-tree": "sealkit.cli._reencrypt:command",
}


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def available_subcommands() -> list[str]:
    """Registered subcommands whose module exists in this build."""
    from importlib.util import find_spec

    return [name for name, spec in SUBCOMMANDS.items() if find_spec(spec.split(":")[0])]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: dispatch on the first argument, map every error to one stderr line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("SEALKIT_DEBUG", "") not in ("", "0", "false")
    args = [a for a in args if a != "--debug"]
    if args and args[0] in SUBCOMMANDS:
        name = args.pop(0)

        def command() -> Any:
            return _load(SUBCOMMANDS[name])

        prog = f"sealkit {name}"
    elif sum(a == "--cert" or a.startswith("--cert=") for a in args) > 1:
        from sealkit.cli._multicert import run_multi  # one SealedSecret per cluster

        sys.exit(run_multi(args, debug))
    else:
        from sealkit.cli._fast import parse_fast

        fast = parse_fast(args, os.environ)
        if fast is not None:  # the common offline seal: no click import (cold start)
            sys.exit(_run_fast(fast, debug))

        def command() -> Any:
            return _load("sealkit.cli._kubeseal:command")

        from sealkit.cli._kubeseal import normalize_argv

        args = normalize_argv(args)
        prog = "sealkit"
    sys.exit(run_click(command, args, prog_name=prog, debug=debug))


def _run_fast(opts: Options, debug: bool) -> int:
    try:
        from sealkit.cli._modes import run

        run(opts)
        return 0
    except BaseException as exc:  # noqa: B036 - the one top-level handler
        return _handle(exc, debug)


def run_click(command_factory: Any, args: list[str], *, prog_name: str, debug: bool) -> int:
    """Run a click command with sealkit's error contract; returns the exit code."""
    try:
        cmd = command_factory()
        result = cmd.main(args=args, prog_name=prog_name, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except BaseException as exc:  # noqa: B036 - the one top-level handler
        return _handle(exc, debug)


def _handle(exc: BaseException, debug: bool) -> int:
    from sealkit._exceptions import SealkitError

    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(exc, SealkitError) and not debug:
        _error(str(exc))
        return exc.exit_code

    import click

    if debug and not isinstance(exc, click.exceptions.Exit):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        _error("interrupted")
        return 130
    if isinstance(exc, SealkitError):
        _error(str(exc))
        return exc.exit_code
    if isinstance(exc, click.UsageError):
        _error(exc.format_message())
        return 2
    if isinstance(exc, click.ClickException):
        _error(exc.format_message())
        return exc.exit_code
    if isinstance(exc, BrokenPipeError):  # e.g. `sealkit ... | head -1`: quiet, like Go
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror}")
        return 1
    if isinstance(exc, UnicodeDecodeError):
        _error("input is not valid UTF-8")
        return 1
    # Anything else is a bug. Its message might quote input, so print only its type.
    _error(f"internal error ({type(exc).__name__}); rerun with --debug for a traceback")
    return 1


def _error(message: str) -> None:
    line = " ".join(message.split())
    try:
        sys.stderr.write(f"error: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
