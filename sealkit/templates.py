"""A restricted evaluator for the Go `text/template` subset that SealedSecret templates use.

Upstream renders `spec.template.data` with Go's `text/template` plus Sprig. We cannot run Go, so
this module evaluates only a small, documented subset and **refuses everything else** with a
one-line `TemplateError` naming the construct. The rule is: never render differently from Go;
when unsure, refuse (the unseal then fails visibly instead of writing a wrong Secret).

Supported:

- text outside actions, copied verbatim; trim markers `{{- ` and ` -}}`;
- `{{ .key }}` (a missing key prints `<no value>`, Go's default `missingkey` option),
  `{{ index . "key-with-dashes" }}` (a missing key gives ""), `{{ . }}` is refused;
- string literals `"..."` (Go escapes) and `` `raw` ``, decimal integers, parentheses,
  pipelines `a | f x` (the previous value is the *last* argument, as in Go);
- functions: `b64enc b64dec quote squote upper lower trim nospace trimPrefix trimSuffix
  replace trunc cat default printf index` with Sprig v3 argument order
  (`trimPrefix "pre" .x`, `replace "old" "new" .x`, `trunc 3 .x`, `default "d" .x`);
  `printf` accepts only the verbs `%s %d %q %v %%` without flags or widths.

Values are Go strings, i.e. bytes (decrypted values need not be UTF-8). Functions whose Go
result depends on Unicode tables (`upper`/`lower` of non-ASCII, `quote` of unassigned code
points) refuse rather than guess. Errors never contain a context value.

Example::

    >>> render_template_data({"url": "postgres://{{ .user }}:{{ .pass | quote }}@db"},
    ...                      {"user": b"app", "pass": b"s3"})
    {'url': b'postgres://app:"s3"@db'}
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sealkit._exceptions import SealkitError

__all__ = [
    "SUPPORTED_FUNCTIONS",
    "TemplateError",
    "build_secret_data",
    "render",
    "render_budget",
    "render_template_data",
]


class TemplateError(SealkitError):
    """A `template.data` entry uses a construct outside the supported subset, or fails in Go."""

    default_message = "unsupported template"


# --- values ----------------------------------------------------------------------------------
class _Missing:
    """Go's invalid reflect.Value from a map miss: prints `<no value>`, becomes nil as an arg."""

    def __repr__(self) -> str:
        return "<missing>"


class _Nil:
    def __repr__(self) -> str:
        return "<nil>"


class _Dot:
    def __repr__(self) -> str:
        return "<dot>"


MISSING = _Missing()
NIL = _Nil()
DOT = _Dot()
Value = Any  # bytes | int | MISSING | NIL | DOT

# --- lexer -----------------------------------------------------------------------------------
_SPACE = " \t\r\n"
_KEYWORDS = {
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
    "nil",
    "true",
    "false",
    "and",
    "or",
    "not",
    "len",
    "slice",
    "call",
    "html",
    "js",
    "urlquery",
    "print",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
}
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)(?![0-9A-Za-z_.])")


@dataclass(frozen=True)
class _Tok:
    kind: str  # field | dot | ident | str | int | pipe | lparen | rparen
    value: Any = None


def _go_unquote(body: str, where: str) -> bytes:
    """Decode the inside of a Go interpreted string literal to bytes."""
    out = bytearray()
    i = 0
    simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        if i + 1 >= len(body):
            raise TemplateError(f"{where}: bad string literal escape")
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2 : i + 4]):
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif e in "uU":
            n = 4 if e == "u" else 8
            digits = body[i + 2 : i + 2 + n]
            if not re.fullmatch(rf"[0-9A-Fa-f]{{{n}}}", digits):
                raise TemplateError(f"{where}: bad string literal escape")
            cp = int(digits, 16)
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise TemplateError(f"{where}: bad string literal escape")
            out += chr(cp).encode("utf-8")
            i += 2 + n
        elif e in "01234567" and re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4]):
            v = int(body[i + 1 : i + 4], 8)
            if v > 255:
                raise TemplateError(f"{where}: bad string literal escape")
            out.append(v)
            i += 4
        else:
            raise TemplateError(f"{where}: bad string literal escape")
    return bytes(out)


def _lex_action(src: str, pos: int, where: str) -> tuple[list[_Tok], int, bool]:
    """Lex one action body starting after `{{`/`{{- `; return tokens, end pos, right-trim."""
    toks: list[_Tok] = []
    n = len(src)
    while True:
        # Right delimiter, with or without the trim marker (Go: space, '-', '}}').
        if src.startswith("}}", pos):
            return toks, pos + 2, False
        if pos + 3 < n + 1 and src[pos] in _SPACE and src.startswith("-}}", pos + 1):
            return toks, pos + 4, True
        if pos >= n:
            raise TemplateError(f"{where}: unclosed action")
        c = src[pos]
        if c in _SPACE:
            pos += 1
        elif c == "|":
            toks.append(_Tok("pipe"))
            pos += 1
        elif c == "(":
            toks.append(_Tok("lparen"))
            pos += 1
        elif c == ")":
            toks.append(_Tok("rparen"))
            pos += 1
        elif c == '"':
            j = pos + 1
            while j < n and src[j] != '"':
                if src[j] == "\\":
                    j += 1
                elif src[j] == "\n":
                    raise TemplateError(f"{where}: unterminated string literal")
                j += 1
            if j >= n:
                raise TemplateError(f"{where}: unterminated string literal")
            toks.append(_Tok("str", _go_unquote(src[pos + 1 : j], where)))
            pos = j + 1
        elif c == "`":
            j = src.find("`", pos + 1)
            if j < 0:
                raise TemplateError(f"{where}: unterminated raw string")
            toks.append(_Tok("str", src[pos + 1 : j].replace("\r", "").encode("utf-8")))
            pos = j + 1
        elif c == ".":
            m = _IDENT_RE.match(src, pos + 1)
            if m is None:
                nxt = src[pos + 1] if pos + 1 < n else ""
                if nxt.isdigit():
                    raise TemplateError(f"{where}: unsupported construct: number literal")
                if nxt and not (nxt in _SPACE or nxt in "|()}"):
                    raise TemplateError(f"{where}: unsupported construct: field name")
                toks.append(_Tok("dot"))
                pos += 1
                continue
            end = m.end()
            if end < n and (src[end] == "." or not (src[end] in _SPACE or src[end] in "|()}")):
                raise TemplateError(f"{where}: unsupported construct: field chain or field name")
            toks.append(_Tok("field", m.group(0)))
            pos = end
        elif c == "-" or c.isdigit():
            m = _INT_RE.match(src, pos)
            if m is None:
                raise TemplateError(f"{where}: unsupported construct: number literal")
            value = int(m.group(0))
            if not -(2**63) <= value < 2**63:
                raise TemplateError(f"{where}: integer literal out of range")
            toks.append(_Tok("int", value))
            pos = m.end()
        elif c == "$":
            raise TemplateError(f"{where}: unsupported construct: variables")
        elif c == "/" and src.startswith("/*", pos):
            raise TemplateError(f"{where}: unsupported construct: comments")
        elif c == "'":
            raise TemplateError(f"{where}: unsupported construct: character literal")
        elif c.isalpha() or c == "_":
            m = _IDENT_RE.match(src, pos)
            if m is None or (m.end() < n and src[m.end()] not in _SPACE + "|()}"):
                raise TemplateError(f"{where}: unsupported construct: identifier")
            name = m.group(0)
            if name in _KEYWORDS and name not in _FUNCS:
                raise TemplateError(f"{where}: unsupported construct: {name!r}")
            toks.append(_Tok("ident", name))
            pos = m.end()
        else:
            raise TemplateError(f"{where}: unsupported construct: character {c!r} in action")


# --- parser ----------------------------------------------------------------------------------
# AST: pipeline = list[command]; command = list[operand]; operand = ("field", name) | ("dot",)
#      | ("lit", value) | ("ident", name) | ("pipe", pipeline)


def _parse(toks: list[_Tok], where: str) -> list[list[tuple[Any, ...]]]:
    pos = 0

    def pipeline() -> list[list[tuple[Any, ...]]]:
        nonlocal pos
        cmds: list[list[tuple[Any, ...]]] = []
        while True:
            cmd: list[tuple[Any, ...]] = []
            while pos < len(toks) and toks[pos].kind not in ("pipe", "rparen"):
                t = toks[pos]
                pos += 1
                if t.kind == "lparen":
                    inner = pipeline()
                    if pos >= len(toks) or toks[pos].kind != "rparen":
                        raise TemplateError(f"{where}: unclosed left paren")
                    pos += 1
                    cmd.append(("pipe", inner))
                elif t.kind == "field":
                    cmd.append(("field", t.value))
                elif t.kind == "dot":
                    cmd.append(("dot",))
                elif t.kind in ("str", "int"):
                    cmd.append(("lit", t.value))
                elif t.kind == "ident":
                    cmd.append(("ident", t.value))
            if not cmd:
                raise TemplateError(f"{where}: missing value for command")
            cmds.append(cmd)
            if pos < len(toks) and toks[pos].kind == "pipe":
                pos += 1
                continue
            return cmds

    result = pipeline()
    if pos != len(toks):
        raise TemplateError(f"{where}: unexpected right paren")
    for i, cmd in enumerate(result):
        _check_command(cmd, first=(i == 0), where=where)
    return result


def _check_command(cmd: list[tuple[Any, ...]], *, first: bool, where: str) -> None:
    head = cmd[0]
    if head[0] != "ident":
        if len(cmd) > 1:
            raise TemplateError(f"{where}: can't give argument to non-function")
        if not first:
            raise TemplateError(f"{where}: non executable command in pipeline stage")
    elif head[1] not in _FUNCS:
        raise TemplateError(f"{where}: function {head[1]!r} not supported")
    for op in cmd[1:]:
        if op[0] == "ident":
            raise TemplateError(f"{where}: unsupported construct: function {op[1]!r} as argument")
    for op in cmd:
        if op[0] == "pipe":
            for i, sub in enumerate(op[1]):
                _check_command(sub, first=(i == 0), where=where)


# --- Go string helpers -----------------------------------------------------------------------
_GO_SPACE = {
    0x09,
    0x0A,
    0x0B,
    0x0C,
    0x0D,
    0x20,
    0x85,
    0xA0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
}


def _runes(b: bytes) -> list[tuple[int, int, int]]:
    """Decode like Go's range-over-string: (start, width, rune or -1 for an invalid byte)."""
    out: list[tuple[int, int, int]] = []
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            out.append((i, 1, c))
            i += 1
            continue
        width = 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if c <= 0xF4 else 0
        if c < 0xC2:
            width = 0
        if width:
            try:
                ch = b[i : i + width].decode("utf-8")
            except UnicodeDecodeError:
                ch = ""
            if len(ch) == 1:
                out.append((i, width, ord(ch)))
                i += width
                continue
        out.append((i, 1, -1))
        i += 1
    return out


_ESCAPES = {7: r"\a", 8: r"\b", 12: r"\f", 10: r"\n", 13: r"\r", 9: r"\t", 11: r"\v"}


def _go_quote(b: bytes) -> bytes:
    """strconv.Quote (what `%q` and Sprig `quote` produce)."""
    out = ['"']
    for start, _width, r in _runes(b):
        if r < 0:
            out.append(f"\\x{b[start]:02x}")
            continue
        ch = chr(r)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0x20 <= r < 0x7F:
            out.append(ch)
        elif r in (7, 8, 12, 10, 13, 9, 11):
            out.append(_ESCAPES[r])
        elif r < 0x20 or r == 0x7F:
            out.append(f"\\x{r:02x}")
        elif unicodedata.category(ch) == "Cn":
            raise TemplateError("quote: code point not known to this renderer's Unicode tables")
        elif ch.isprintable():
            out.append(ch)
        elif r < 0x10000:
            out.append(f"\\u{r:04x}")
        else:
            out.append(f"\\U{r:08x}")
    out.append('"')
    return "".join(out).encode("utf-8")


def _fmt_v(v: Value, fn: str) -> bytes:
    """fmt `%v` for the values we support (string, int); nil/missing are refused."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v).encode()
    raise TemplateError(f"{fn}: unsupported argument (nil, missing key or map)")


# --- functions -------------------------------------------------------------------------------
# Each entry: (parameter kinds, variadic kind or None, implementation). Kinds: "s" Go string,
# "i" int, "a" interface{} (missing -> nil).


def _b64dec(s: bytes) -> bytes:
    s = s.replace(b"\r", b"").replace(b"\n", b"")
    if not re.fullmatch(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", s):
        raise TemplateError("b64dec: input is not valid base64 (Sprig would render its error text)")
    return base64.b64decode(s)


def _ascii_case(fn: str, upper: bool) -> Callable[[bytes], bytes]:
    def impl(s: bytes) -> bytes:
        if not s.isascii():
            raise TemplateError(f"{fn}: non-ASCII input is not supported")
        return s.upper() if upper else s.lower()

    return impl


def _trim(s: bytes) -> bytes:
    rs = _runes(s)
    lo, hi = 0, len(rs)
    while lo < hi and rs[lo][2] in _GO_SPACE:
        lo += 1
    while hi > lo and rs[hi - 1][2] in _GO_SPACE:
        hi -= 1
    if lo >= hi:
        return b""
    return s[rs[lo][0] : rs[hi - 1][0] + rs[hi - 1][1]]


def _nospace(s: bytes) -> bytes:
    # goutils.DeleteWhiteSpace walks *bytes* as runes: each byte is re-encoded as the code point
    # of the same value (so non-ASCII input is mangled, and bytes 0x85/0xA0 are dropped), but
    # returns the input unchanged when nothing was removed. Match it exactly.
    kept = [c for c in s if c not in _GO_SPACE]
    if len(kept) == len(s):
        return s
    return b"".join(chr(c).encode("utf-8") for c in kept)


def _replace(old: bytes, new: bytes, s: bytes) -> bytes:
    if old:
        return s.replace(old, new)
    parts = [new]
    for a, w, _ in _runes(s):
        parts += [s[a : a + w], new]
    return b"".join(parts)


def _trunc(c: int, s: bytes) -> bytes:
    if c < 0 and len(s) + c > 0:
        return s[len(s) + c :]
    if c >= 0 and len(s) > c:
        return s[:c]
    return s


def _empty(v: Value) -> bool:
    if v is NIL or v is MISSING:
        return True
    if isinstance(v, bytes):
        return not v
    if isinstance(v, int):
        return v == 0
    raise TemplateError("default: unsupported argument")


def _default(d: Value, *given: Value) -> Value:
    return d if not given or _empty(given[0]) else given[0]


def _quote(*args: Value) -> bytes:
    return b" ".join(_go_quote(_fmt_v(a, "quote")) for a in args if a is not NIL)


def _squote(*args: Value) -> bytes:
    return b" ".join(b"'" + _fmt_v(a, "squote") + b"'" for a in args if a is not NIL)


def _cat(*args: Value) -> bytes:
    return b" ".join(_fmt_v(a, "cat") for a in args if a is not NIL)


_VERB_RE = re.compile(rb"%(.)", re.S)


def _printf(fmt: bytes, *args: Value) -> bytes:
    out = bytearray()
    argi = 0
    pos = 0
    while True:
        j = fmt.find(b"%", pos)
        if j < 0:
            out += fmt[pos:]
            break
        out += fmt[pos:j]
        if j + 1 >= len(fmt):
            raise TemplateError("printf: format ends with a lone %")
        verb = fmt[j + 1 : j + 2]
        pos = j + 2
        if verb == b"%":
            out += b"%"
            continue
        if verb not in (b"s", b"d", b"q", b"v"):
            raise TemplateError("printf: only the verbs %s %d %q %v %% are supported")
        if argi >= len(args):
            raise TemplateError("printf: missing argument for a verb")
        a = args[argi]
        argi += 1
        if verb in (b"s", b"q") and not isinstance(a, bytes):
            raise TemplateError(f"printf: %{verb.decode()} needs a string argument")
        if verb == b"d" and (not isinstance(a, int) or isinstance(a, bool)):
            raise TemplateError("printf: %d needs an integer argument")
        out += _go_quote(a) if verb == b"q" else _fmt_v(a, "printf")
    if argi != len(args):
        raise TemplateError("printf: more arguments than verbs")
    return bytes(out)


_FUNCS: dict[str, tuple[tuple[str, ...], str | None, Callable[..., Value]]] = {
    "b64enc": (("s",), None, lambda s: base64.b64encode(s)),
    "b64dec": (("s",), None, _b64dec),
    "upper": (("s",), None, _ascii_case("upper", True)),
    "lower": (("s",), None, _ascii_case("lower", False)),
    "trim": (("s",), None, _trim),
    "nospace": (("s",), None, _nospace),
    "trimPrefix": (("s", "s"), None, lambda p, s: s[len(p) :] if s.startswith(p) else s),
    "trimSuffix": (("s", "s"), None, lambda x, s: s[: -len(x)] if x and s.endswith(x) else s),
    "replace": (("s", "s", "s"), None, _replace),
    "trunc": (("i", "s"), None, _trunc),
    "quote": ((), "a", _quote),
    "squote": ((), "a", _squote),
    "cat": ((), "a", _cat),
    "default": (("a",), "a", _default),
    "printf": (("s",), "a", _printf),
    "index": (("a",), "a", None),  # type: ignore[dict-item]  # evaluated specially
}
SUPPORTED_FUNCTIONS = tuple(sorted(_FUNCS))


def _coerce(v: Value, kind: str, fn: str) -> Value:
    if kind == "a":
        if v is MISSING:
            return NIL
        if v is DOT:
            raise TemplateError(f"{fn}: passing the whole context is not supported")
        return v
    if kind == "s":
        if isinstance(v, bytes):
            return v
        if v is MISSING or v is NIL:
            raise TemplateError(f"{fn}: invalid value; expected string (missing key?)")
        raise TemplateError(f"{fn}: wrong type for value; expected string")
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise TemplateError(f"{fn}: wrong type for value; expected int")


# --- budget --------------------------------------------------------------------------------
@dataclass
class _Budget:
    max_bytes: int
    deadline: float
    spent: int = 0


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("_BUDGET", default=None)


@contextlib.contextmanager
def render_budget(max_bytes: int, seconds: float) -> Iterator[None]:
    """Bound the rendering done inside the block: total output bytes and wall time.

    Why: a SealedSecret whose template repeats a value 1000 times took the controller from
    161 MB to 1.17 GB (issue 12, poison pill). Over budget, rendering stops with a
    `TemplateError` before the oversized value is built. No budget outside such a block.
    """
    token = _BUDGET.set(_Budget(max_bytes, time.monotonic() + seconds))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _spend(size: int, *, keep: bool = False) -> None:
    """Refuse a value of ``size`` bytes (or the output so far) that would break the budget."""
    budget = _BUDGET.get()
    if budget is None:
        return
    if budget.spent + size > budget.max_bytes:
        raise TemplateError(f"rendered data would exceed {budget.max_bytes} bytes")
    if time.monotonic() > budget.deadline:
        raise TemplateError("rendering took too long")
    if keep:
        budget.spent += size


def _replace_size(old: bytes, new: bytes, s: bytes) -> int:
    return len(s) + (s.count(old) * (len(new) - len(old)) if old else (len(s) + 1) * len(new))


# --- evaluation ------------------------------------------------------------------------------
class _Eval:
    def __init__(self, context: Mapping[str, bytes]) -> None:
        self.ctx = context

    def pipeline(self, cmds: list[list[tuple[Any, ...]]]) -> Value:
        value: Value = None
        for i, cmd in enumerate(cmds):
            value = self.command(cmd, value if i else None, has_final=i > 0)
        return value

    def operand(self, op: tuple[Any, ...]) -> Value:
        kind = op[0]
        if kind == "field":
            return self.ctx.get(op[1], MISSING)
        if kind == "dot":
            return DOT
        if kind == "lit":
            return op[1]
        if kind == "pipe":
            return self.pipeline(op[1])
        raise TemplateError("unsupported construct")  # pragma: no cover - parser rejects it

    def command(self, cmd: list[tuple[Any, ...]], final: Value, *, has_final: bool) -> Value:
        head = cmd[0]
        if head[0] != "ident":
            return self.operand(head)
        name = head[1]
        args = [self.operand(op) for op in cmd[1:]]
        if has_final:
            args.append(final)
        fixed, variadic, impl = _FUNCS[name]
        if len(args) < len(fixed) or (variadic is None and len(args) != len(fixed)):
            raise TemplateError(
                f"wrong number of args for {name}: want {len(fixed)} got {len(args)}"
            )
        if name == "index":
            return self.index(args)
        coerced = [
            _coerce(a, fixed[i] if i < len(fixed) else variadic or "a", name)
            for i, a in enumerate(args)
        ]
        if name == "replace" and all(isinstance(a, bytes) for a in coerced):
            _spend(_replace_size(*coerced))  # refuse before building it
        else:
            _spend(sum(len(a) for a in coerced if isinstance(a, bytes)))
        result = impl(*coerced)
        if isinstance(result, bytes):
            _spend(len(result))
        return result

    def index(self, args: list[Value]) -> Value:
        if len(args) != 2 or args[0] is not DOT:
            raise TemplateError('index: only `index . "key"` is supported')
        key = args[1]
        if not isinstance(key, bytes):
            raise TemplateError("index: the key must be a string")
        return self.ctx.get(key.decode("utf-8", "surrogateescape"), b"")


def _print(v: Value) -> bytes:
    if v is MISSING:
        return b"<no value>"
    if isinstance(v, bytes):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v).encode()
    raise TemplateError("printing this value (nil or the whole context) is not supported")


def _compile(src: str, where: str) -> list[bytes | list[list[tuple[Any, ...]]]]:
    parts: list[bytes | list[list[tuple[Any, ...]]]] = []
    pos = 0
    trim_next = False
    while True:
        j = src.find("{{", pos)
        text = src[pos:] if j < 0 else src[pos:j]
        if trim_next:
            text = text.lstrip(_SPACE)
        if j < 0:
            parts.append(text.encode("utf-8"))
            return parts
        start = j + 2
        if src.startswith("-", start) and start + 1 < len(src) and src[start + 1] in _SPACE:
            text = text.rstrip(_SPACE)
            start += 2
        parts.append(text.encode("utf-8"))
        if src.startswith("/*", start) or src.startswith("/*", start + 1):
            raise TemplateError(f"{where}: unsupported construct: comments")
        toks, pos, trim_next = _lex_action(src, start, where)
        if not toks:
            raise TemplateError(f"{where}: missing value for command")
        parts.append(_parse(toks, where))


def render(template: str, context: Mapping[str, bytes | str], *, name: str = "") -> bytes:
    """Render one template string against `context` (key -> value); raise `TemplateError`."""
    where = f"template.data[{name}]" if name else "template"
    ctx = {k: v.encode("utf-8") if isinstance(v, str) else bytes(v) for k, v in context.items()}
    program = _compile(template, where)
    ev = _Eval(ctx)
    out = bytearray()
    for part in program:
        if isinstance(part, bytes):
            out += part
            continue
        try:
            printed = _print(ev.pipeline(part))
            _spend(len(out) + len(printed))
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc.message}") from None
        out += printed
    _spend(len(out), keep=True)
    return bytes(out)


def render_template_data(
    template_data: Mapping[str, str | None], context: Mapping[str, bytes | str]
) -> dict[str, bytes]:
    """Render every non-null entry of `template_data`; a null entry is omitted.

    Errors of all entries are collected and raised together (as upstream does), sorted by key.
    """
    out: dict[str, bytes] = {}
    errors: list[str] = []
    for key in sorted(template_data):
        src = template_data[key]
        if src is None:
            continue
        if not isinstance(src, str):
            errors.append(f"template.data[{key}]: value must be a string")
            continue
        try:
            out[key] = render(src, context, name=key)
        except TemplateError as exc:
            errors.append(exc.message)
    if errors:
        raise TemplateError("; ".join(errors))
    return out


def build_secret_data(
    decrypted: Mapping[str, bytes], template_data: Mapping[str, str | None] | None
) -> dict[str, bytes]:
    """The Secret's final `data` under upstream v0.40 rules.

    - the context is the decrypted values plus the plaintext `template.data` values (raw, not
      rendered); on a name collision the decrypted value wins;
    - a template entry whose key is an `encryptedData` key is not written;
    - a `null` template entry removes its key from the output (also a decrypted one).
    """
    data = dict(decrypted)
    if not template_data:
        return data
    context: dict[str, bytes | str] = dict(decrypted)
    for key, value in template_data.items():
        if isinstance(value, str) and key not in context:
            context[key] = value
    rendered = render_template_data(
        {k: v for k, v in template_data.items() if k not in decrypted and v is not None},
        context,
    )
    data.update(rendered)
    for key, value in template_data.items():
        if value is None:
            data.pop(key, None)
    return data
