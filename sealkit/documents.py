"""Parse manifest input the way kubeseal reads it: many YAML documents or concatenated JSON.

Error messages give a position and the parser's problem only, never the offending line,
because that line may be a secret value.
"""

from __future__ import annotations

import json
from typing import Any

from sealkit._exceptions import InputError

__all__ = ["load_documents", "load_json_stream"]


def load_documents(data: bytes | str, *, source: str = "input") -> list[Any]:
    """All non-empty documents in ``data`` (JSON objects back to back, or YAML ``---`` docs)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return load_json_stream(stripped)
        except ValueError:
            pass  # flow-style YAML also starts with "{"; let the YAML parser judge
    return _load_yaml_stream(text, source)


def load_json_stream(text: str) -> list[Any]:
    """Concatenated JSON objects, as kubeseal reads them (no separators, no array)."""
    decoder = json.JSONDecoder()
    docs: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return docs
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)


def _load_yaml_stream(text: str, source: str) -> list[Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return [d for d in yaml.load_all(text, Loader=loader) if d is not None]  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"malformed YAML in {source}{where}: {exc.problem}") from None
    except yaml.YAMLError:
        raise InputError(f"malformed YAML in {source}") from None
