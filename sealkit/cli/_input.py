"""Read kubeseal's input the way kubeseal does: YAML 1.1 scalars as Go sees them.

kubeseal decodes each document with ``sigs.k8s.io/yaml`` into a ``v1.Secret``: go-yaml v2
resolves plain scalars (YAML 1.1: ``yes``/``y``/``on`` are booleans, ``1e3`` is a float,
timestamps stay text), and every number or boolean that lands in a *string* field is turned
into a string: ints in base 10, floats with ``strconv.FormatFloat(v, 'g', -1, 32)``, booleans
as ``true``/``false``. So ``stringData: {port: 5432, on: yes, day: 2024-01-01}`` seals
``"5432"``, ``"true"`` and ``"2024-01-01"``, and ``name: 5`` names the Secret ``"5"``.

`load_input` parses with PyYAML's loader adjusted to go-yaml v2's resolver (the differences
are listed in docs/compatibility.md); `as_go_secret` applies the string rendering to the string
fields of a v1 Secret. Both turn malformed input (nesting past the recursion limit, lone
surrogates, a list where a map belongs) into one-line `InputError`s.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from typing import Any

from sealkit._exceptions import InputError

__all__ = ["as_go_secret", "go_string", "load_input"]


def load_input(data: bytes, *, source: str = "input") -> list[Any]:
    """All non-empty documents: concatenated JSON objects, or YAML ``---`` documents."""
    from sealkit.documents import load_json_stream

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{source} is not valid UTF-8") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            try:
                docs = load_json_stream(stripped)
            except ValueError:
                pass  # flow-style YAML also starts with "{"; let the YAML parser judge
            else:
                if "\\u" in stripped or "\\U" in stripped:
                    docs = [_no_surrogates(d) for d in docs]
                return docs
        return _load_fast(data) or _load_yaml(text, source)
    except RecursionError:
        raise InputError(f"{source} nests too deeply") from None


def _load_fast(data: bytes) -> list[Any] | None:
    """The one document of an ordinary Secret file, read without importing PyYAML (about as
    costly as the seal itself); None when `sealkit.fastyaml` cannot judge it alone
    (several documents, block scalars, numbers, ...), and PyYAML must."""
    from sealkit.fastyaml import Unsupported, load

    try:
        doc = load(data, go_yaml_v2=True)
    except Unsupported:
        return None
    return [] if doc is None else [doc]


def _no_surrogates(value: Any) -> Any:
    """Go's JSON decoder turns a lone surrogate escape into U+FFFD; so do we."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, list):
        return [_no_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    return value


def _loader() -> Any:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class GoYamlV2Loader(base):  # type: ignore[misc,valid-type]
        """PyYAML's safe loader with go-yaml v2's scalar resolution."""

    def text(loader: Any, node: Any) -> str:
        return str(loader.construct_scalar(node))

    def integer(loader: Any, node: Any) -> Any:
        if ":" in node.value:  # YAML 1.1 sexagesimal: go-yaml v2 keeps it as text
            return str(node.value)
        try:  # Go's strconv.ParseInt(s, 0, 64): 0x, 0o, 0b, and a leading 0 means octal
            plain = str(node.value).replace("_", "")
            sign = -1 if plain.startswith("-") else 1
            digits = plain.lstrip("+-")
            if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
                return sign * int(digits, 8)
            return sign * int(digits, 0)
        except ValueError:
            return loader.construct_yaml_int(node)

    def floating(loader: Any, node: Any) -> Any:
        if ":" in node.value:
            return str(node.value)
        return loader.construct_yaml_float(node)

    def boolean(loader: Any, node: Any) -> bool:
        return str(node.value).lower() in ("y", "yes", "true", "on")

    GoYamlV2Loader.add_constructor("tag:yaml.org,2002:timestamp", text)  # Go: text, as written
    GoYamlV2Loader.add_constructor("tag:yaml.org,2002:value", text)  # a plain "=" is text
    GoYamlV2Loader.add_constructor("tag:yaml.org,2002:int", integer)
    GoYamlV2Loader.add_constructor("tag:yaml.org,2002:float", floating)
    GoYamlV2Loader.add_constructor("tag:yaml.org,2002:bool", boolean)
    GoYamlV2Loader.add_implicit_resolver(  # go-yaml v2 also takes y/Y/n/N as booleans
        "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN")
    )
    GoYamlV2Loader.add_implicit_resolver(  # ... and 0o17 as an octal int
        "tag:yaml.org,2002:int", re.compile(r"^[-+]?0o[0-7_]+$"), list("-+0")
    )
    GoYamlV2Loader.add_implicit_resolver(  # ... and floats without a dot (1e3, 2E-4)
        "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
    )
    return GoYamlV2Loader


_LOADER: Any = None


def _load_yaml(text: str, source: str) -> list[Any]:
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _loader()
    try:
        return [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"malformed YAML in {source}{where}: {exc.problem}") from None
    except yaml.YAMLError:
        raise InputError(f"malformed YAML in {source}") from None


# --- the string rendering of a v1 Secret's string fields --------------------------------------
def go_string(value: Any, where: str) -> str:
    """``value`` as sigs.k8s.io/yaml stores a YAML scalar into a Go string field."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 64):  # go-yaml v2: int64, else uint64, else float64
            return str(value)
        return _format_float32(float(value))
    if isinstance(value, float):
        return _format_float32(value)
    if value is None:
        return ""
    raise InputError(f"{where} must be a string")


def _float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _format_float32(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, 32)``: shortest float32 digits."""
    if math.isnan(value):
        return "NaN"
    try:
        f32 = _float32(value)
    except OverflowError:
        f32 = math.inf if value > 0 else -math.inf
    if math.isinf(f32):
        return "+Inf" if f32 > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f32) < 0 else ""
    f32 = abs(f32)
    if f32 == 0:
        return sign + "0"
    for precision in range(1, 10):
        text = f"{f32:.{precision - 1}e}"
        if _float32(float(text)) == f32:
            break
    mantissa, _, exp_text = text.partition("e")
    exp = int(exp_text)
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    if exp < -4 or exp >= 6:  # %e: d[.ddd]e±dd
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    whole = digits[: exp + 1].ljust(exp + 1, "0")
    frac = digits[exp + 1 :]
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def _string_map(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a map of strings")
    return {go_string(k, where): go_string(v, f"{where}.{k}") for k, v in value.items()}


def as_go_secret(doc: Any) -> Any:
    """A copy of a v1 Secret document with its string fields as kubeseal reads them.

    Anything that is not a map, or is not a v1 Secret, is returned as it is: the model
    reports it. Shapes Go cannot decode into a Secret are `InputError`s.
    """
    if not isinstance(doc, Mapping) or doc.get("kind") != "Secret":
        return doc
    secret = dict(doc)
    meta = secret.get("metadata")
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise InputError("metadata must be a map")
        meta = dict(meta)
        for field in ("name", "namespace", "generateName"):
            if field in meta:
                meta[field] = go_string(meta[field], f"metadata.{field}")
        for field in ("labels", "annotations"):
            if field in meta:
                meta[field] = _string_map(meta[field], f"metadata.{field}")
        secret["metadata"] = meta
    if "stringData" in secret:
        secret["stringData"] = _string_map(secret["stringData"], "stringData")
    if "type" in secret:
        secret["type"] = go_string(secret["type"], "type")
    data = secret.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise InputError("data must be a map of base64 strings")
    return secret
