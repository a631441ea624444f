"""The kubeseal-compatible modes of ``sealkit``, free of click (see `sealkit.cli._fast`).

The flow follows kubeseal's ``run()``: ``--version``, ``--fetch-cert``, ``--validate``,
``--re-encrypt``, ``--recovery-unseal``, ``--raw``, ``--merge-into``, else seal stdin/``-f``.
Every mode reads and checks all its input and renders all its output before writing anything,
so a failure never leaves partial output (``-w`` and in-place rewrites are atomic renames).
``opts`` is the dict of flag values, keyed like the click parameters of
`sealkit.cli._kubeseal.command`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from sealkit._exceptions import InputError, UsageError
from sealkit.cli._common import (
    gateway_from_options,
    load_cert_bytes,
    load_public_key_from_options,
    split_list,
)

__all__ = ["DEFAULTS", "VERSION", "run"]

VERSION = "0.1.0"
_TTY_HINT = "(tty detected: expecting json/yaml k8s resource in stdin)"

# Flag defaults, shared by the click command and the fast path.
DEFAULTS: dict[str, Any] = {
    "secret_file": "",
    "sealed_secret_file": "",
    "output_format": None,
    "cert": "",
    "controller_name": "sealed-secrets-controller",
    "controller_namespace": "kube-system",
    "controller_url": "",
    "kubeconfig": "",
    "context": "",
    "request_timeout": "30s",
    "fetch_cert": False,
    "scope": "strict",
    "allow_empty_data": False,
    "raw": False,
    "name": "",
    "from_file": (),
    "merge_into": "",
    "validate": False,
    "re_encrypt": False,
    "recovery_unseal": False,
    "recovery_private_key": (),
    "namespace": "",
    "show_version": False,
}


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run(opts: dict[str, Any]) -> None:
    """Run the mode the flags select."""
    if opts["show_version"]:
        sys.stdout.write(f"sealkit version: {VERSION}\n")
        return
    _check_flags(opts)
    if opts["fetch_cert"]:
        _write_output(opts, load_cert_bytes(opts).decode("utf-8", "replace"))
    elif opts["validate"]:
        _validate(opts)
    elif opts["re_encrypt"]:
        _re_encrypt(opts)
    elif opts["recovery_unseal"]:
        _recovery_unseal(opts)
    elif opts["raw"]:
        _raw(opts)
    elif opts["merge_into"]:
        _merge_into(opts)
    else:
        _seal(opts)


# --- flag checks ------------------------------------------------------------------------------
def _check_flags(opts: dict[str, Any]) -> None:
    from sealkit.output import parse_format
    from sealkit.scopes import parse_scope

    opts["scope_value"] = parse_scope(opts["scope"])
    if opts["output_format"] is not None:
        opts["output_format"] = parse_format(opts["output_format"])
    if opts["from_file"] and not opts["raw"]:
        raise UsageError("--from-file requires --raw")
    if opts["recovery_private_key"] and not opts["recovery_unseal"]:
        _note("warning: --recovery-private-key is ignored without --recovery-unseal")
    modes = [m for m in ("fetch_cert", "validate", "re_encrypt", "recovery_unseal", "raw",
                         "merge_into") if opts[m]]
    if len(modes) > 1:
        names = ", ".join("--" + m.replace("_", "-") for m in modes)
        raise UsageError(f"these flags cannot be combined: {names}")


def _output_format(opts: Mapping[str, Any], path: str | None) -> str:
    if path and path.lower().endswith((".yaml", ".yml")):
        return "yaml"
    return opts["output_format"] or "json"


# --- input / output ---------------------------------------------------------------------------
def _read_input(opts: Mapping[str, Any]) -> bytes:
    path = opts["secret_file"]
    if path and path != "-":
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if sys.stdin.isatty():
        _note(_TTY_HINT)
    return sys.stdin.buffer.read()


def _documents(opts: Mapping[str, Any], what: str) -> list[Any]:
    from sealkit.documents import load_documents

    data = _read_input(opts)
    source = opts["secret_file"] or "stdin"
    try:
        docs = load_documents(data, source=source)
    except UnicodeDecodeError:
        raise InputError(f"{source} is not valid UTF-8") from None
    if not docs:
        raise InputError(f"no {what} found. Ensure the input is valid and UTF-8 encoded")
    return docs


def _write_output(opts: Mapping[str, Any], text: str) -> None:
    target = opts["sealed_secret_file"]
    if target:
        from sealkit.files import atomic_write

        atomic_write(target, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _dump(docs: list[Any], fmt: str) -> str:
    from sealkit.output import dump_all

    return dump_all(docs, fmt)


# --- modes ------------------------------------------------------------------------------------
def _default_namespace(opts: Mapping[str, Any]) -> Any:
    def resolve() -> str:
        from sealkit.cluster import kubeconfig_namespace

        return kubeconfig_namespace(opts["kubeconfig"] or None, opts["context"] or None)

    return resolve


def _seal(opts: Mapping[str, Any]) -> None:
    from sealkit.model import seal_secret

    docs = _documents(opts, "secrets")
    public_key = load_public_key_from_options(opts)
    sealed = [
        seal_secret(
            doc,
            public_key,
            scope=opts["scope_value"],
            name=opts["name"] or None,
            namespace=opts["namespace"] or None,
            default_namespace=_default_namespace(opts),
            allow_empty_data=opts["allow_empty_data"],
        )
        for doc in docs
    ]
    fmt = _output_format(opts, opts["sealed_secret_file"])
    _write_output(opts, _dump(sealed, fmt))


def _raw(opts: Mapping[str, Any]) -> None:
    from sealkit.model import seal_value
    from sealkit.scopes import Scope

    scope = opts["scope_value"]
    namespace = opts["namespace"]
    if scope is not Scope.CLUSTER_WIDE and not namespace:
        namespace = _default_namespace(opts)()
    if scope is not Scope.CLUSTER_WIDE and not namespace:
        raise UsageError(f"must provide the --namespace flag with --raw and --scope {scope}")
    if scope is Scope.STRICT and not opts["name"]:
        raise UsageError("must provide the --name flag with --raw and --scope strict")
    sources = split_list(opts["from_file"])
    if len(sources) > 1:
        raise UsageError("must provide only one --from-file when encrypting a single item "
                         "with --raw")
    if sources:
        path = sources[0].split("=", 1)[-1] if "=" in sources[0] else sources[0]
        try:
            with open(path, "rb") as handle:
                value = handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
    else:
        if sys.stdin.isatty():
            _note(_TTY_HINT)
        value = sys.stdin.buffer.read()
    public_key = load_public_key_from_options(opts)
    blob = seal_value(value, public_key, scope=scope, namespace=namespace or "",
                      name=opts["name"] or "")
    _write_output(opts, blob)


def _merge_into(opts: Mapping[str, Any]) -> None:
    from sealkit.files import atomic_write
    from sealkit.model import is_sealed_secret, seal_secret
    from sealkit.scopes import Scope, scope_of
    from sealkit.yamlrt import dump_roundtrip, load_roundtrip

    path = opts["merge_into"]
    try:
        with open(path, encoding="utf-8") as handle:
            original = handle.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    target = load_roundtrip(original, source=path)
    if len(target.docs) != 1 or not is_sealed_secret(target.docs[0]):
        raise InputError(f"{path} must hold exactly one SealedSecret")
    existing = target.docs[0]
    meta = existing.get("metadata") or {}
    file_scope = scope_of(meta)
    scope = opts["scope_value"]
    if scope is not Scope.STRICT and scope is not file_scope:
        raise InputError(f"scope mismatch: {path} is {file_scope} but --scope is {scope}")

    docs = _documents(opts, "secrets")
    if len(docs) != 1:
        raise InputError("--merge-into takes exactly one input Secret")
    secret = dict(docs[0]) if isinstance(docs[0], Mapping) else docs[0]
    if isinstance(secret, dict):
        metadata = dict(secret.get("metadata") or {})
        metadata["namespace"] = meta.get("namespace") or metadata.get("namespace")
        secret["metadata"] = metadata
    public_key = load_public_key_from_options(opts)
    update = seal_secret(
        secret,
        public_key,
        scope=file_scope,
        name=meta.get("name") or None,
        allow_empty_data=opts["allow_empty_data"],
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


def _sealed_documents(opts: Mapping[str, Any]) -> list[Any]:
    from sealkit.model import is_sealed_secret

    docs = _documents(opts, "sealed secrets")
    for doc in docs:
        if not is_sealed_secret(doc):
            kind = doc.get("kind") if isinstance(doc, Mapping) else type(doc).__name__
            raise InputError(f'input is not a SealedSecret (kind "{kind or ""}")')
    return docs


def _validate(opts: Mapping[str, Any]) -> None:
    docs = _sealed_documents(opts)
    gateway = gateway_from_options(opts)
    for doc in docs:
        gateway.verify(doc)


def _re_encrypt(opts: Mapping[str, Any]) -> None:
    docs = _sealed_documents(opts)
    gateway = gateway_from_options(opts)
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
    in_place = bool(opts["secret_file"]) and opts["secret_file"] != "-" and not (
        opts["sealed_secret_file"]
    )
    if in_place:
        from sealkit.files import atomic_write
        from sealkit.yamlrt import detect_format

        with open(opts["secret_file"], encoding="utf-8") as handle:
            original_format = detect_format(handle.read())
        fmt = opts["output_format"] or original_format
        if opts["secret_file"].lower().endswith((".yaml", ".yml")):
            fmt = "yaml"
        atomic_write(opts["secret_file"], _dump(rotated, fmt))
        return
    fmt = _output_format(opts, opts["sealed_secret_file"])
    _write_output(opts, _dump(rotated, fmt))


def _recovery_unseal(opts: Mapping[str, Any]) -> None:
    from sealkit.keys import load_private_keys
    from sealkit.model import unseal_sealed_secret

    key_files = split_list(opts["recovery_private_key"])
    if not key_files:
        raise UsageError("--recovery-unseal requires --recovery-private-key")
    docs = _sealed_documents(opts)
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
    fmt = _output_format(opts, opts["sealed_secret_file"])
    _write_output(opts, _dump(secrets, fmt))
