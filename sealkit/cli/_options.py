"""The typed, frozen options of ``sealkit`` in kubeseal mode, built by both parsers.

click (`sealkit.cli._kubeseal`) and the click-free fast path (`sealkit.cli._fast`) each produce
a plain mapping of flag values; `Options.from_mapping` turns either into the same frozen
object, so the modes (`sealkit.cli._modes`) never see a mutable dict and both parsers are
compared by equality in tests. Flag names map to fields by click's rule (``--re-encrypt`` ->
``re_encrypt``); the kubectl connection overrides live in `ClusterOptions`
(`sealkit.cluster_options`, re-exported here), which the subcommands that need a certificate
(seal-tree, set) use as well. Both are NamedTuples (`sealkit._record.Record`), not
dataclasses: immutable all the same, and they cost no ``dataclasses``/``inspect``/``typing``
import on the cold start (benchmarked against kubeseal).
"""

from __future__ import annotations

from collections.abc import Mapping

from sealkit._record import TYPE_CHECKING, Record
from sealkit.cluster_options import ClusterOptions, strings

if TYPE_CHECKING:
    from typing import Any

    from sealkit.scopes import Scope

__all__ = ["ClusterOptions", "Options"]


class Options(Record):
    """Every kubeseal flag (and sealkit's ``--controller-url``), parsed but not yet validated.

    ``scope`` and ``output_format`` stay as typed so both parsers agree on bad values; the
    `scope_value` (UsageError, exit 2, a flag error in kubeseal) and `format_value`
    (InputError, exit 1, a runtime error in kubeseal) properties validate them.
    """

    secret_file: str = ""
    sealed_secret_file: str = ""
    output_format: str | None = None
    cert: str = ""
    fetch_cert: bool = False
    scope: str = "strict"
    allow_empty_data: bool = False
    raw: bool = False
    name: str = ""
    from_file: tuple[str, ...] = ()
    merge_into: str = ""
    validate: bool = False
    re_encrypt: bool = False
    recovery_unseal: bool = False
    recovery_private_key: tuple[str, ...] = ()
    show_version: bool = False
    verbosity: int = 0  # klog's -v; the other klog flags are accepted and ignored
    cluster: ClusterOptions = ClusterOptions()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Options:
        """Build from a parser's mapping (click params or the fast path's dict)."""
        names = set(cls._fields) - {"cluster"}
        cluster_names = set(ClusterOptions._fields)
        unknown = set(values) - names - cluster_names - _IGNORED
        if unknown:
            raise KeyError(f"unknown option(s): {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for name in names:
            value = values.get(name)
            if value is None:
                continue
            if name in ("from_file", "recovery_private_key"):
                value = strings(value)
            elif name == "verbosity":
                value = int(value or 0)
            kwargs[name] = value
        return cls(cluster=ClusterOptions.from_mapping(values), **kwargs)

    @property
    def scope_value(self) -> Scope:
        from sealkit.scopes import parse_scope

        return parse_scope(self.scope)

    @property
    def format_value(self) -> str | None:
        """``json``/``yaml`` or None when not given (the output path then decides)."""
        if self.output_format is None:
            return None
        from sealkit._exceptions import InputError, UsageError
        from sealkit.output import parse_format

        try:
            return parse_format(self.output_format)
        except UsageError as exc:  # a runtime error in kubeseal (exit 1), not a flag error
            raise InputError(str(exc)) from None


# klog flags kubeseal accepts (and ignores, as sealkit has no klog): parsers may pass them.
_IGNORED = frozenset(
    {
        "log_dir",
        "log_file",
        "log_file_max_size",
        "logtostderr",
        "alsologtostderr",
        "legacy_stderr_threshold_behavior",
        "add_dir_header",
        "skip_headers",
        "one_output",
        "skip_log_headers",
        "stderrthreshold",
        "alsologtostderrthreshold",
        "vmodule",
        "log_backtrace_at",
    }
)
