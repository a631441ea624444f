"""`vault-bootstrap`: declarative Vault/OpenBao configuration (validate, plan, apply).

Exit codes: `plan` 0 = no changes, 2 = changes pending, 1 = error; `apply`/`validate` 0 or 1.
Output (the plan) goes to stdout; progress logs go to stderr through a redacting filter.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

# This process loads no pydantic plugins; skipping their entry-point scan saves start-up time
# that every PostSync Job run pays. Set before pydantic is first imported (lazily, below).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")

import click

from sealkit import SealkitError

from ._redact import RedactingFilter, redact

__all__ = ["main"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line (for log collectors); the message is already redacted."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


def _setup_logging(verbose: bool, debug: bool, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("vault-bootstrap: %(levelname)s %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.getLogger("vault_bootstrap").setLevel(level)
    if not debug:
        logging.getLogger("urllib3").setLevel(logging.ERROR)


def _guard(fn: Any, debug: bool) -> Any:
    try:
        return fn()
    except SealkitError as exc:
        click.echo(f"error: {redact(exc.message)}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback, no values
        if debug:
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {redact(' '.join(str(exc).split()))[:300]}",
            err=True,
        )
        sys.exit(1)


_concurrency_opt = click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Vault requests in flight at most (default: connection.concurrency, 8).",
)
_config_opt = click.option(
    "-f",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The YAML config file.",
)
_common = [
    click.option("-v", "--verbose", is_flag=True, help="Progress logs on stderr."),
    click.option(
        "--debug", is_flag=True, help="Debug logs and tracebacks (values still redacted)."
    ),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        envvar="VAULT_BOOTSTRAP_LOG_FORMAT",
        show_default=True,
        help="Format of the log lines on stderr.",
    ),
]


def _with_common(fn: Any) -> Any:
    for opt in reversed(_common):
        fn = opt(fn)
    return _config_opt(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sealkit")
def main() -> None:
    """Declarative, idempotent Vault/OpenBao configuration (plan/apply)."""


@main.command()
@_with_common
def validate(config_path: str, verbose: bool, debug: bool, log_format: str) -> None:
    """Check the config file offline (schema, references' shape)."""
    _setup_logging(verbose, debug, log_format)
    from ._config import load_config

    _guard(lambda: load_config(config_path), debug)
    click.echo(f"{config_path}: valid")


def _run(config_path: str, mode: str, **kw: Any) -> Any:
    from ._config import load_config
    from ._run import run

    config = load_config(config_path)
    return run(config, mode=mode, **kw)  # type: ignore[arg-type]


@main.command()
@_with_common
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan on stdout.")
@click.option("--prune/--no-prune", default=None, help="Include deletes of owned objects.")
@click.option("--prune-all", is_flag=True, help="Allow a prune that deletes everything owned.")
@click.option("--no-wait", is_flag=True, help="Do not wait for Vault to become ready.")
@click.option("--wait-timeout", type=float, default=None, help="Seconds (default: config, 300).")
@_concurrency_opt
def plan(
    config_path: str,
    verbose: bool,
    debug: bool,
    log_format: str,
    as_json: bool,
    prune: bool | None,
    prune_all: bool,
    no_wait: bool,
    wait_timeout: float | None,
    concurrency: int | None,
) -> None:
    """Show what apply would change. Exit 0 = nothing, 2 = changes, 1 = error."""
    _setup_logging(verbose, debug, log_format)
    from ._render import plan_to_json, render_plan

    result = _guard(
        lambda: _run(
            config_path,
            "plan",
            prune=prune,
            prune_all=prune_all,
            wait=not no_wait,
            wait_timeout=wait_timeout,
            concurrency=concurrency,
        ),
        debug,
    )
    out = plan_to_json(result.plan, result.api_calls) if as_json else render_plan(result.plan)
    click.echo(out, nl=False)
    sys.exit(2 if result.plan.has_changes else 0)


@main.command()
@_with_common
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan on stdout.")
@click.option("--prune/--no-prune", default=None, help="Delete owned objects not in the config.")
@click.option("--prune-all", is_flag=True, help="Allow a prune that deletes everything owned.")
@click.option("--no-wait", is_flag=True, help="Do not wait for Vault to become ready.")
@click.option("--wait-timeout", type=float, default=None, help="Seconds (default: config, 300).")
@click.option(
    "--retry-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to keep retrying one idempotent call.",
)
@click.option("--verify/--no-verify", default=True, help="Run the config's verify section.")
@_concurrency_opt
def apply(
    config_path: str,
    verbose: bool,
    debug: bool,
    log_format: str,
    as_json: bool,
    prune: bool | None,
    prune_all: bool,
    no_wait: bool,
    wait_timeout: float | None,
    retry_timeout: float,
    verify: bool,
    concurrency: int | None,
) -> None:
    """Wait, (init/unseal), log in, plan and apply; then verify. Exit 0 or 1."""
    _setup_logging(verbose, debug, log_format)
    from ._render import plan_to_json, render_plan

    def show_plan(plan: Any) -> None:
        # Printed before any write, so a Job log shows what was attempted even if a write fails.
        click.echo(plan_to_json(plan) if as_json else render_plan(plan), nl=False)

    result = _guard(
        lambda: _run(
            config_path,
            "apply",
            prune=prune,
            prune_all=prune_all,
            wait=not no_wait,
            wait_timeout=wait_timeout,
            retry_timeout=retry_timeout,
            verify=verify,
            on_plan=show_plan,
            concurrency=concurrency,
        ),
        debug,
    )
    if not as_json:
        click.echo(f"Apply complete: {result.writes} writes.")
        for line in result.verify_report:
            click.echo(f"verify: {line}")
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
