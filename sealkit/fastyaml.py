"""A strict reader for the plain YAML that kubectl, kind, k3s and cloud CLIs write into
kubeconfigs, and that people write for a Secret.

Why: importing PyYAML costs about 15 ms, a third of kubeseal's whole ``--fetch-cert``, and a
cluster call or a seal reads one small file in YAML. This reader accepts a small subset and
gives up (`Unsupported`) on anything outside it; the caller then parses with PyYAML, which
stays the authority. For every document it accepts, the result equals ``yaml.safe_load``'s,
or with ``go_yaml_v2`` that of `sealkit.cli._input`'s go-yaml v2 loader (the differential
tests in ``tests/sealkit/test_fastyaml.py`` check both). Users: `sealkit.kubeconfig` and
`sealkit.cli._input`.

The subset:

* printable ASCII and ``\\n`` only (no tab, CR, BOM, other encodings), at most `MAX_BYTES`;
* an optional first line ``---``; comment lines; `` # comments`` after values;
* block mappings (keys YAML reads as strings, no duplicates) and block sequences (``- ``
  items: a scalar, a mapping, or a node on the following lines), at most `MAX_DEPTH` deep;
* one-line scalars: plain ones that YAML 1.1 reads as strings, its booleans (``true``,
  ``false``, ``yes``, ``off``, ...), its nulls (``null``, ``~``, nothing), single-quoted
  (``''`` escapes), double-quoted without backslashes, and the empty ``{}`` and ``[]``;
* JSON (a document starting with ``{``) of objects, arrays, strings, booleans and null, laid
  out as ``json.dumps`` (and Go's ``MarshalIndent``) do, without escapes or duplicate keys.

Everything else (flow collections, anchors, aliases, tags, block scalars, multi-line
scalars, numbers, timestamps, merge keys, directives, several documents) is `Unsupported`.
Pure: bytes in, a value or `Unsupported` out; work is linear in the input.
"""

from __future__ import annotations

from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_BYTES", "MAX_DEPTH", "Unsupported", "load"]

MAX_BYTES = 1 << 20  # kubeconfigs are a few KiB; larger ones go to PyYAML
MAX_DEPTH = 32  # kubeconfigs nest 5 levels
_MAX_KEY = 1000  # YAML limits implicit keys to 1024 characters

# YAML 1.1 as PyYAML resolves plain scalars (yaml.resolver.Resolver).
_BOOL = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_BOOL_FORMS = {
    form: _BOOL[word] for word in _BOOL for form in (word, word.capitalize(), word.upper())
}
# go-yaml v2 (kubeseal's Secret decoder; `sealkit.cli._input`'s loader) also reads y/n.
_GO_BOOL_FORMS = {**_BOOL_FORMS, "y": True, "Y": True, "n": False, "N": False}
_NULL_FORMS = {"~", "null", "Null", "NULL"}
# A plain scalar starting with one of these is an indicator, a number, a timestamp, a merge
# key, ``=`` or ``.inf``/``.nan``: not a string, or not plain.
_BAD_START = frozenset("0123456789+~=<!&*|>'\"%@`#,[]{}?:")
_DOT_FLOATS = {".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"}


class Unsupported(Exception):  # noqa: N818 - a signal, not an error: "use PyYAML"
    """The document is outside the subset (not necessarily invalid): parse it with PyYAML."""


def load(data: bytes, *, go_yaml_v2: bool = False) -> Any:
    """The document in ``data``, as ``yaml.safe_load`` returns it; `Unsupported` if outside
    the subset. With ``go_yaml_v2``, as `sealkit.cli._input`'s go-yaml v2 loader returns it
    (the same, but ``y``/``Y``/``n``/``N`` are booleans)."""
    if len(data) > MAX_BYTES:
        raise Unsupported
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise Unsupported from None
    if not text.replace("\n", "").isprintable():  # tabs, CR, NUL, DEL, other controls
        raise Unsupported
    stripped = text.lstrip("\n ")
    if stripped.startswith("{"):
        return _json(stripped)
    lines: list[tuple[int, str]] = []
    started = False
    for line in text.split("\n"):
        content = line.strip(" ")
        if not content or content.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0 and content.startswith(("---", "...", "%")):
            if content == "---" and not lines and not started:
                started = True  # the optional document start (once: "---\n---" is two)
                continue
            raise Unsupported
        lines.append((indent, content))
    if not lines:
        return None
    parser = _Parser(lines, _GO_BOOL_FORMS if go_yaml_v2 else _BOOL_FORMS)
    try:
        doc = parser.block(lines[0][0], 0)
    except RecursionError:  # not reached (MAX_DEPTH); PyYAML then reports it
        raise Unsupported from None
    if parser.i != len(lines):
        raise Unsupported
    return doc


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


class _Parser:
    """Recursive descent over the content lines (indent, text without the indent)."""

    def __init__(self, lines: list[tuple[int, str]], bools: dict[str, bool]) -> None:
        self.lines = lines
        self.bools = bools
        self.i = 0

    def block(self, indent: int, depth: int) -> Any:
        if _is_item(self.lines[self.i][1]):
            return self.sequence(indent, depth)
        return self.mapping(indent, depth)

    def mapping(self, indent: int, depth: int) -> dict[str, Any]:
        if depth > MAX_DEPTH:  # checked by both node kinds: each can nest the other directly
            raise Unsupported
        out: dict[str, Any] = {}
        lines = self.lines
        while self.i < len(lines):
            ind, text = lines[self.i]
            if ind < indent:
                break
            if ind > indent or _is_item(text):
                raise Unsupported
            key, rest = _key(text, self.bools)
            if key in out:
                raise Unsupported
            self.i += 1
            out[key] = self.value(rest, indent, depth)
        return out

    def value(self, rest: str, indent: int, depth: int) -> Any:
        """The value after ``key:`` on a mapping line at ``indent``."""
        rest = rest.strip(" ")
        if rest and not rest.startswith("#"):
            value = _scalar(rest, self.bools)
            self.no_continuation(indent)
            return value
        if self.i < len(self.lines):
            ind, text = self.lines[self.i]
            if ind > indent:
                return self.block(ind, depth + 1)
            if ind == indent and _is_item(text):  # "key:\n- item": a sequence may sit level
                return self.sequence(ind, depth + 1)
        return None

    def sequence(self, indent: int, depth: int) -> list[Any]:
        if depth > MAX_DEPTH:
            raise Unsupported
        out: list[Any] = []
        lines = self.lines
        while self.i < len(lines):
            ind, text = lines[self.i]
            if ind < indent or (ind == indent and not _is_item(text)):
                break
            if ind > indent:
                raise Unsupported
            body = text[1:].lstrip(" ")
            if not body or body.startswith("#"):  # "-": the node is on the next lines
                self.i += 1
                nxt = lines[self.i][0] if self.i < len(lines) else -1
                out.append(self.block(nxt, depth + 1) if nxt > indent else None)
                continue
            if _is_item(body):  # "- - x"
                raise Unsupported
            if _starts_mapping(body):
                column = indent + len(text) - len(body)
                lines[self.i] = (column, body)  # the mapping's first key line
                out.append(self.mapping(column, depth + 1))
                continue
            self.i += 1
            out.append(_scalar(body, self.bools))
            self.no_continuation(indent)
        return out

    def no_continuation(self, indent: int) -> None:
        """A scalar ends its line: a deeper next line would continue it (multi-line)."""
        if self.i < len(self.lines) and self.lines[self.i][0] > indent:
            raise Unsupported


def _starts_mapping(text: str) -> bool:
    """Whether a sequence item's text is ``key: ...`` (else it is a scalar)."""
    if text[0] in "'\"":
        _, end = _quoted(text)
        return text[end : end + 1] == ":"
    return ": " in text or text.endswith(":")


def _key(text: str, bools: dict[str, bool]) -> tuple[str, str]:
    """(key, what follows its colon) of a mapping line."""
    if text[0] in "'\"":
        key, end = _quoted(text)
        rest = text[end + 1 :]
        if text[end : end + 1] != ":" or (rest and rest[0] != " "):
            raise Unsupported
    else:
        end = text.find(": ")
        if end < 0:
            if not text.endswith(":"):
                raise Unsupported
            end = len(text) - 1
        key, rest = text[:end], text[end + 1 :]
        if not key or key[0] == "-" or key[-1] == " " or not isinstance(_plain(key, bools), str):
            raise Unsupported
    if len(key) > _MAX_KEY:
        raise Unsupported
    return key, rest


def _scalar(text: str, bools: dict[str, bool]) -> Any:
    """A one-line value (non-empty, not a comment)."""
    if text[0] in "'\"":
        value, end = _quoted(text)
        _only_comment(text[end:])
        return value
    if text.startswith(("{}", "[]")):
        _only_comment(text[2:])
        return {} if text[0] == "{" else []
    cut = text.find(" #")
    if cut >= 0:
        text = text[:cut].rstrip(" ")
    return _plain(text, bools)


def _only_comment(rest: str) -> None:
    if rest and not (rest[0] == " " and rest.lstrip(" ").startswith("#")):
        raise Unsupported


def _plain(text: str, bools: dict[str, bool]) -> Any:
    """A plain scalar as YAML 1.1 resolves it, if a string, boolean or null."""
    if ": " in text or text.endswith(":") or " #" in text:
        raise Unsupported
    if text in bools:
        return bools[text]
    if text in _NULL_FORMS:
        return None
    first = text[0]
    if first in _BAD_START:
        raise Unsupported
    if first == "-" and (len(text) == 1 or text[1] in " 0123456789."):
        raise Unsupported
    if first == "." and (text[1:2].isdigit() or text in _DOT_FLOATS):  # .5, .inf (".key": text)
        raise Unsupported
    return text


def _quoted(text: str) -> tuple[str, int]:
    """A one-line quoted scalar at the start of ``text``: (value, index after it)."""
    if text[0] == '"':
        end = text.find('"', 1)
        if end < 0 or "\\" in text[1:end]:  # multi-line, or escapes
            raise Unsupported
        return text[1:end], end + 1
    parts = []
    start = 1
    while True:
        end = text.find("'", start)
        if end < 0:
            raise Unsupported
        if text[end + 1 : end + 2] != "'":
            parts.append(text[start:end])
            return "".join(parts), end + 1
        parts.append(text[start : end + 1])  # '' is one quote
        start = end + 2


def _json(text: str) -> Any:
    """A JSON kubeconfig: YAML's flow style reads it the same when it holds no numbers, no
    escapes and no duplicate keys, and is laid out as a JSON encoder writes it (keys and
    colons on one line)."""
    import json

    if "\\" in text:
        raise Unsupported

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items) or any(len(k) > _MAX_KEY for k in out):
            raise Unsupported
        return out

    def refuse(_: str) -> Any:
        raise Unsupported

    try:
        doc = json.loads(
            text,
            object_pairs_hook=pairs,
            parse_float=refuse,
            parse_int=refuse,
            parse_constant=refuse,
        )
    except (ValueError, RecursionError):
        raise Unsupported from None
    if not isinstance(doc, dict):
        raise Unsupported
    body = text.rstrip("\n ")
    if "\n" in body:
        second = body.split("\n", 2)[1]
        layouts = [json.dumps(doc, indent=len(second) - len(second.lstrip(" ")))]
    else:
        layouts = [json.dumps(doc), json.dumps(doc, separators=(",", ":"))]
    if body not in layouts or _depth(doc) > MAX_DEPTH:
        raise Unsupported
    return doc


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (json.loads accepts more than Python can recurse)."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack.extend(
                (child, level) for child in (node.values() if isinstance(node, dict) else node)
            )
    return deepest
