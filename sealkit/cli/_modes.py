"""The kubeseal-compatible modes of ``sealkit``, free of click (see `sealkit.cli._fast`).

The flow follows kubeseal's ``runCLI()``: ``--version``, ``--recovery-unseal``, ``--validate``,
``--re-encrypt``, then the certificate (before any input is read, so a bad ``--cert`` fails
first), ``--fetch-cert``, ``--merge-into``, ``--raw``, else seal stdin/``-f``. Every mode reads
and checks all its input and renders all its output before writing anything, so a failure
never leaves partial output (``-w`` and in-place rewrites are atomic renames). ``opts`` is the
frozen `sealkit.cli._options.Options` both parsers build.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from sealkit._exceptions import InputError
from sealkit._record import TYPE_CHECKING
from sealkit.cli._common import gateway_from_options, load_public_key, split_list
from sealkit.cli._options import Options

if TYPE_CHECKING:
    from typing import Any

__all__ = ["VERSION", "run"]

VERSION = "v0.1.0"
_TTY_HINT = "(tty detected: expecting json/yaml k8s resource in stdin)"
# Input cap: kubeseal has none, but a Secret is at most 1 MiB in etcd, and a whole tree of
# them fits well below this; past it sealkit refuses instead of growing without bound.
MAX_INPUT = 64 << 20


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run(opts: Options) -> None:
    """Run the mode the flags select, in kubeseal's order of precedence.

    kubeseal does not refuse combined modes: ``--recovery-unseal`` wins over ``--validate``,
    which wins over ``--re-encrypt``, then ``--fetch-cert``, ``--merge-into``, ``--raw``.
    """
    if opts.show_version:
        sys.stdout.write(f"kubeseal version: {VERSION} (sealkit)\n")
        return
    opts.scope_value  # noqa: B018 - validate --scope and -o before any I/O
    opts.format_value  # noqa: B018
    if opts.from_file and not opts.raw:
        raise InputError("--from-file requires --raw")
    if opts.secret_file and opts.secret_file != "-" and not os.path.exists(opts.secret_file):
        raise InputError("Could not read file specified with --secret-file")
    if opts.recovery_unseal:
        _recovery_unseal(opts)
        return
    if opts.recovery_private_key and sys.stderr.isatty():
        _note(
            "warning: ignoring --recovery-private-key because unseal command not chosen "
            "with --recovery-unseal"
        )
    if opts.validate:
        _validate(opts)
    elif opts.re_encrypt:
        _re_encrypt(opts)
    elif opts.fetch_cert:
        _write_output(opts, _cert_bytes(opts).decode("utf-8", "replace"))
    elif opts.merge_into:
        _merge_into(opts)
    elif opts.raw:
        _raw(opts)
    else:
        _seal(opts)


def _cert_bytes(opts: Options) -> bytes:
    from sealkit.cli._common import load_cert_bytes

    return load_cert_bytes(opts.cert, opts.cluster)


def _public_key(opts: Options) -> Any:
    return load_public_key(opts.cert, opts.cluster)


def _output_format(opts: Options, path: str | None) -> str:
    if path and path.lower().endswith((".yaml", ".yml")):
        return "yaml"
    return opts.format_value or "json"


# --- input / output ---------------------------------------------------------------------------
def _read_input(opts: Options) -> bytes:
    path = opts.secret_file
    if path and path != "-":
        try:
            with open(path, "rb") as handle:
                return _read_bounded(handle, path)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if sys.stdin.isatty():
        _note(_TTY_HINT)
    return _read_bounded(sys.stdin.buffer, "stdin")


def _read_bounded(handle: Any, source: str) -> bytes:
    """At most `MAX_INPUT` bytes, else a clear error (``-f /dev/zero`` ends, never hangs)."""
    data = handle.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise InputError(f"{source} is larger than {MAX_INPUT // (1 << 20)} MiB, the input limit")
    return data


def _documents(opts: Options, what: str) -> list[Any]:
    from sealkit.cli._input import load_input

    data = _read_input(opts)
    docs = load_input(data, source=opts.secret_file or "stdin")
    if not docs:
        raise InputError(f"no {what} found. Ensure the input is valid and UTF-8 encoded")
    return docs


def _secret_documents(opts: Options) -> list[Any]:
    """Input Secrets with kubeseal's string rendering of YAML scalars (``name: 5`` -> "5")."""
    from sealkit.cli._input import as_go_secret

    return [as_go_secret(doc) for doc in _documents(opts, "secrets")]


def _write_output(opts: Options, text: str, mode: int | None = None) -> None:
    target = opts.sealed_secret_file
    if target:
        from sealkit.files import atomic_write

        atomic_write(target, text, mode=mode)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _dump(docs: list[Any], fmt: str) -> str:
    from sealkit.output import dump_all

    return dump_all(docs, fmt)


# --- modes ------------------------------------------------------------------------------------
def _default_namespace(opts: Options, *, strict: bool = False) -> Any:
    """The kubeconfig namespace, resolved only when needed. Sealing a Secret, kubeseal
    ignores a missing or broken kubeconfig (the Secret then "must declare a namespace");
    ``--raw`` reports it (``strict``)."""

    def resolve() -> str:
        from sealkit._exceptions import ClusterError
        from sealkit.cluster import kubeconfig_namespace

        try:
            return kubeconfig_namespace(opts.cluster)
        except ClusterError:
            if strict:
                raise
            return ""

    return resolve


def _seal(opts: Options) -> None:
    from sealkit.model import seal_secret

    public_key = _public_key(opts)  # kubeseal opens the certificate before reading input
    docs = _secret_documents(opts)
    sealed = [
        seal_secret(
            doc,
            public_key,
            scope=opts.scope_value,
            name=opts.name or None,
            namespace=opts.cluster.namespace or None,
            default_namespace=_default_namespace(opts),
            allow_empty_data=opts.allow_empty_data,
        )
        for doc in docs
    ]
    fmt = _output_format(opts, opts.sealed_secret_file)
    _write_output(opts, _dump(sealed, fmt))


def _raw(opts: Options) -> None:
    from sealkit.model import seal_value
    from sealkit.scopes import Scope

    public_key = _public_key(opts)
    scope = opts.scope_value
    namespace = opts.cluster.namespace
    if scope is not Scope.CLUSTER_WIDE and not namespace:
        namespace = _default_namespace(opts, strict=True)()
    # Runtime errors in kubeseal (exit 1), not flag errors.
    if scope is not Scope.CLUSTER_WIDE and not namespace:
        raise InputError(f"must provide the --namespace flag with --raw and --scope {scope}")
    if scope is Scope.STRICT and not opts.name:
        raise InputError("must provide the --name flag with --raw and --scope strict")
    sources = split_list(opts.from_file)
    if len(sources) > 1:
        raise InputError(
            "must provide only one --from-file when encrypting a single item with --raw"
        )
    if sources:
        path = sources[0].split("=", 1)[-1] if "=" in sources[0] else sources[0]
        try:
            with open(path, "rb") as handle:
                value = handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
    else:
        if sys.stdin.isatty():
            _note("(tty detected: expecting a secret to encrypt in stdin)")
        value = _read_bounded(sys.stdin.buffer, "stdin")
    blob = seal_value(
        value, public_key, scope=scope, namespace=namespace or "", name=opts.name or ""
    )
    _write_output(opts, blob)


def _merge_into(opts: Options) -> None:
    from sealkit.files import atomic_write
    from sealkit.model import is_sealed_secret, seal_secret
    from sealkit.scopes import Scope, scope_of
    from sealkit.yamlrt import dump_roundtrip, load_roundtrip

    path = opts.merge_into
    try:
        with open(path, encoding="utf-8") as handle:
            original = handle.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    public_key = _public_key(opts)
    target = load_roundtrip(original, source=path)
    if len(target.docs) != 1 or not is_sealed_secret(target.docs[0]):
        raise InputError(f"{path} must hold exactly one SealedSecret")
    existing = target.docs[0]
    meta = existing.get("metadata") or {}
    file_scope = scope_of(meta)
    scope = opts.scope_value
    if scope is not Scope.STRICT and scope is not file_scope:
        raise InputError(f"scope mismatch: {path} is {file_scope} but --scope is {scope}")

    docs = _secret_documents(opts)
    if len(docs) != 1:
        raise InputError("--merge-into takes exactly one input Secret")
    secret = dict(docs[0]) if isinstance(docs[0], Mapping) else docs[0]
    if isinstance(secret, dict):
        metadata = dict(secret.get("metadata") or {})
        metadata["namespace"] = meta.get("namespace") or metadata.get("namespace")
        secret["metadata"] = metadata
    update = seal_secret(
        secret,
        public_key,
        scope=file_scope,
        name=meta.get("name") or None,
        allow_empty_data=opts.allow_empty_data,
        default_namespace=_default_namespace(opts),
    )
    spec = _ensure_map(existing, "spec")
    encrypted = _ensure_map(spec, "encryptedData")
    for key, value in update["spec"]["encryptedData"].items():
        encrypted[key] = value
    new_template = update["spec"]["template"]
    new_meta = new_template.get("metadata") or {}
    if new_meta.get("labels") or new_meta.get("annotations"):
        template = _ensure_map(spec, "template")
        template_meta = _ensure_map(template, "metadata")
        for field in ("labels", "annotations"):
            if new_meta.get(field):
                existing_map = _ensure_map(template_meta, field)
                for key, value in new_meta[field].items():
                    existing_map[key] = value
    atomic_write(path, dump_roundtrip(target))


def _ensure_map(parent: Any, key: str) -> Any:
    """``parent[key]``, created as an empty map when missing or null (kubeseal panics here)."""
    value = parent.get(key)
    if not isinstance(value, Mapping):
        value = {}
        parent[key] = value
        value = parent[key]
    return value


def _sealed_documents(opts: Options) -> list[Any]:
    from sealkit.model import is_sealed_secret

    docs = _documents(opts, "sealed secrets")
    for doc in docs:
        if not is_sealed_secret(doc):
            kind = doc.get("kind") if isinstance(doc, Mapping) else type(doc).__name__
            raise InputError(f'input is not a SealedSecret (kind "{kind or ""}")')
    return docs


def _validate(opts: Options) -> None:
    docs = _sealed_documents(opts)
    gateway = gateway_from_options(opts.cluster)
    for doc in docs:
        gateway.verify(doc)


def _re_encrypt(opts: Options) -> None:
    docs = _sealed_documents(opts)
    gateway = gateway_from_options(opts.cluster)
    rotated = []
    for doc in docs:
        result = gateway.rotate(doc)
        result.setdefault("kind", "SealedSecret")
        result.setdefault("apiVersion", "bitnami.com/v1alpha1")
        for field in ("creationTimestamp", "deletionTimestamp", "generation"):
            (result.get("metadata") or {}).pop(field, None)
        template_meta = ((result.get("spec") or {}).get("template") or {}).get("metadata")
        if isinstance(template_meta, dict):
            template_meta.pop("creationTimestamp", None)
        result.pop("status", None)
        rotated.append(result)
    in_place = bool(opts.secret_file) and opts.secret_file != "-" and not (opts.sealed_secret_file)
    if in_place:
        from sealkit.files import atomic_write
        from sealkit.yamlrt import detect_format

        with open(opts.secret_file, encoding="utf-8") as handle:
            original_format = detect_format(handle.read())
        fmt = opts.format_value or original_format
        if opts.secret_file.lower().endswith((".yaml", ".yml")):
            fmt = "yaml"
        atomic_write(opts.secret_file, _dump(rotated, fmt))
        return
    fmt = _output_format(opts, opts.sealed_secret_file)
    _write_output(opts, _dump(rotated, fmt))


def _recovery_unseal(opts: Options) -> None:
    from sealkit.keys import load_private_keys
    from sealkit.model import unseal_sealed_secret

    key_files = split_list(opts.recovery_private_key)
    docs = _sealed_documents(opts)  # no key: kubeseal's "no key could decrypt secret (k)"
    keys = []
    for path in key_files:
        try:
            with open(os.path.expanduser(path), "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
        try:
            keys.extend(load_private_keys(data))
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    secrets = [unseal_sealed_secret(doc, keys) for doc in docs]
    fmt = _output_format(opts, opts.sealed_secret_file)
    _write_output(opts, _dump(secrets, fmt), mode=0o600)  # plaintext: owner-only, as kubeseal
