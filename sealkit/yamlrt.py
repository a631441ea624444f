"""Round-trip editing of manifest files: keep format, comments, key order and quoting.

The only module that imports ruamel.yaml (its API has churned; keep it in one place). Used by
``--merge-into`` and ``sealkit set``. JSON files stay JSON (2-space indent, key order kept);
YAML files stay YAML with their comments. Example::

    doc = load_roundtrip(text)                 # RoundTrip(docs=[...], fmt="yaml", ...)
    doc.docs[0]["spec"]["encryptedData"]["k"] = blob
    atomic_write(path, dump_roundtrip(doc))
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sealkit._exceptions import InputError
from sealkit.documents import load_json_stream

__all__ = ["RoundTrip", "detect_format", "dump_roundtrip", "load_roundtrip"]


@dataclass
class RoundTrip:
    """Parsed documents plus what is needed to write them back the same way."""

    docs: list[Any]
    fmt: str  # "json" or "yaml"
    explicit_start: bool = False  # the YAML file began with "---"
    json_indent: int = 2
    trailing_newline: bool = True
    _yaml: Any = field(default=None, repr=False)


def detect_format(text: str) -> str:
    return "json" if text.lstrip().startswith("{") else "yaml"


def _make_yaml(sequence_dash_offset: int) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 2**31 - 1  # never re-wrap long base64 values
    yaml.indent(mapping=2, sequence=2 + sequence_dash_offset, offset=sequence_dash_offset)
    return yaml


def load_roundtrip(text: str, *, source: str = "file") -> RoundTrip:
    """Parse ``text`` (JSON or multi-document YAML) for editing; raises `InputError`."""
    if detect_format(text) == "json":
        try:
            docs = load_json_stream(text)
        except ValueError as exc:
            raise InputError(f"malformed JSON in {source}: {exc.args[0].split(':')[0]}") from None
        indent = 2
        match = re.search(r"\{\s*\n([ \t]+)\"", text)
        if match:
            indent = len(match.group(1).expandtabs())
        return RoundTrip(docs, "json", json_indent=indent, trailing_newline=text.endswith("\n"))

    # Keep the file's list style: "key:\n- a" (kubectl's) or "key:\n  - a".
    indented_lists = any(
        len(m.group(2)) > len(m.group(1))
        for m in re.finditer(r"^([ \t]*)[^\s#-][^\n]*:[ \t]*\n([ \t]*)- ", text, re.MULTILINE)
    )
    yaml = _make_yaml(2 if indented_lists else 0)
    from ruamel.yaml.error import YAMLError

    try:
        docs = [d for d in yaml.load_all(text) if d is not None]
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"malformed YAML in {source}{where}") from None
    explicit_start = text.lstrip().startswith("---")
    return RoundTrip(docs, "yaml", explicit_start=explicit_start, _yaml=yaml)


def dump_roundtrip(rt: RoundTrip) -> str:
    """Serialize ``rt`` back in its own format and style."""
    if rt.fmt == "json":
        parts = [json.dumps(d, indent=rt.json_indent, ensure_ascii=False) for d in rt.docs]
        return "\n".join(parts) + ("\n" if rt.trailing_newline else "")
    yaml = rt._yaml or _make_yaml(0)
    yaml.explicit_start = rt.explicit_start or len(rt.docs) > 1
    out = io.StringIO()
    yaml.dump_all(rt.docs, out)
    return out.getvalue()
