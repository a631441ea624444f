"""Bounded decoding of one SealedSecret from a request body (JSON or YAML).

Why bounded: a 1 MB YAML list of 499k items cost +254 MB and 16 s of CPU before its 400
(issue 12, YAML bomb). So YAML is first *scanned* as a stream of libyaml events, which costs
no objects, and refused as soon as it has an alias, more than ``MAX_NODES`` nodes or more than
``MAX_DEPTH`` levels; only then is it built. JSON is parsed by the C decoder (fast, no aliases)
after a bracket-depth scan, then walked with the same limits. Strings that are not valid
Unicode (lone surrogates from ``\\ud800`` escapes) are refused, so nothing later fails to
encode them. A SealedSecret needs a few levels and, at 1 MiB, about 3,000 nodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_NODES", "BadRequest", "parse_sealed_secret"]

MAX_DEPTH = 32
MAX_NODES = 20_000
_SS_API_VERSION = "bitnami.com/v1alpha1"
_SS_KIND = "SealedSecret"
_BRACKETS = re.compile(rb"[^\[\]{}]+")
_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BadRequest(Exception):
    """A request the API refuses with a 4xx; the message is short and never echoes the body."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _StrictLoader(_Loader):  # type: ignore[misc, valid-type]
    """libyaml's safe loader without implicit timestamps (a SealedSecret has none)."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _too_deep(body: bytes) -> bool:
    """Deeply nested flow collections cost the parsers seconds before they fail."""
    depth = 0
    for byte in _BRACKETS.sub(b"", body):
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _scan_yaml(text: str) -> None:
    """Walk the event stream only: refuse aliases and oversized or too deep documents."""
    depth = nodes = 0
    loader = _StrictLoader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent):
                raise BadRequest("YAML aliases are not allowed")
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if nodes > MAX_NODES:
                    raise BadRequest("body has too many nodes")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise BadRequest("body is nested too deeply")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _check_tree(value: Any) -> None:
    """Node count, depth and valid Unicode for a decoded JSON value (iterative)."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise BadRequest("body has too many nodes")
        if depth > MAX_DEPTH:
            raise BadRequest("body is nested too deeply")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: Any) -> None:
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("body has an invalid Unicode string") from None


def _decode(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("empty body")
    if _too_deep(body):
        raise BadRequest("body is nested too deeply")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        _check_tree(obj)
        return obj
    try:
        _scan_yaml(text)
        docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except BadRequest:
        raise
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        raise BadRequest("body is neither JSON nor YAML") from None
    if len(docs) != 1:
        raise BadRequest("expected exactly one document" if docs else "empty body")
    _check_tree(docs[0])  # YAML keys may be numbers or null: checked below
    return docs[0]


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _check_meta(meta: Mapping[str, Any], where: str) -> None:
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not _is_str_map(value):
            raise BadRequest(f"{where}.{field} must map strings to strings")
    for field in ("name", "namespace"):
        if meta.get(field) is not None and not isinstance(meta[field], str):
            raise BadRequest(f"{where}.{field} must be a string")


def parse_sealed_secret(body: bytes) -> dict[str, Any]:
    """Decode exactly one SealedSecret, or raise `BadRequest` (4xx) saying what is wrong."""
    obj = _decode(body)
    if not isinstance(obj, dict):
        raise BadRequest("expected a SealedSecret object")
    if obj.get("kind") != _SS_KIND or obj.get("apiVersion") != _SS_API_VERSION:
        raise BadRequest(f"expected kind {_SS_KIND} of {_SS_API_VERSION}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise BadRequest("missing metadata.name")
    _check_meta(meta, "metadata")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise BadRequest("missing spec")
    enc = spec.get("encryptedData")
    if enc is not None and not _is_str_map(enc):
        raise BadRequest("spec.encryptedData must map strings to strings")
    template = spec.get("template")
    if template is not None and not isinstance(template, dict):
        raise BadRequest("spec.template must be an object")
    if template and template.get("metadata") is not None:
        if not isinstance(template["metadata"], dict):
            raise BadRequest("spec.template.metadata must be an object")
        _check_meta(template["metadata"], "spec.template.metadata")
    if spec.get("data") is not None and not isinstance(spec["data"], str):
        raise BadRequest("spec.data must be a string")
    return obj


def value_count(sealed: Mapping[str, Any]) -> int:
    """How many ciphertexts a request asks us to open (each is at least one RSA operation)."""
    spec = sealed.get("spec") or {}
    return len(spec.get("encryptedData") or {}) + (1 if spec.get("data") else 0)
