"""Render manifests in kubeseal's shapes.

JSON (kubeseal's default): Go struct field order (``kind``, ``apiVersion``, ``metadata``, then
``spec.template`` before ``spec.encryptedData``), map keys sorted, 2-space indent, Go's HTML-safe
escaping of ``<``, ``>`` and ``&``, UTF-8 kept, one newline after each document.

YAML: every document prefixed ``---``, every key sorted, block style, no line wrapping.
kubeseal v0.40.0 no longer emits ``creationTimestamp: null``, and neither do we (it also makes
Argo CD show OutOfSync).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sealkit._exceptions import UsageError

__all__ = [
    "FORMATS",
    "OBJECT_META_ORDER",
    "dump",
    "dump_all",
    "kube_order",
    "parse_format",
    "to_json",
    "to_yaml",
]

FORMATS = ("json", "yaml")

_TOP = ("kind", "apiVersion", "metadata", "spec", "immutable", "data", "stringData", "type")
# Go's ObjectMeta field order (also what /v1/rotate orders template metadata by).
OBJECT_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_SPEC = ("template", "data", "encryptedData")
_TEMPLATE = ("metadata", "type", "immutable", "data")
_OWNER_REF = ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
_GO_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def parse_format(text: str) -> str:
    """``json``/``yaml``, case-insensitive, else kubeseal's error."""
    lowered = (text or "").lower()
    if lowered not in FORMATS:
        raise UsageError(f"unsupported output format: {text}")
    return lowered


def _ordered(obj: Mapping[str, Any], order: Iterable[str]) -> dict[str, Any]:
    order = tuple(order)
    result = {k: obj[k] for k in order if k in obj}
    result.update({k: obj[k] for k in sorted(obj) if k not in result})
    return result


def _sorted_map(value: Any) -> Any:
    return dict(sorted(value.items())) if isinstance(value, Mapping) else value


def _meta(meta: Any) -> Any:
    if not isinstance(meta, Mapping):
        return meta
    result = _ordered(meta, OBJECT_META_ORDER)
    for key in ("labels", "annotations"):
        if key in result:
            result[key] = _sorted_map(result[key])
    if isinstance(result.get("ownerReferences"), list):
        result["ownerReferences"] = [
            _ordered(r, _OWNER_REF) if isinstance(r, Mapping) else r
            for r in result["ownerReferences"]
        ]
    return result


def kube_order(doc: Any) -> Any:
    """A copy of a Secret/SealedSecret dict with keys in Go's JSON field order."""
    if not isinstance(doc, Mapping):
        return doc
    result = _ordered(doc, _TOP)
    if "metadata" in result:
        result["metadata"] = _meta(result["metadata"])
    for key in ("data", "stringData"):
        if key in result:
            result[key] = _sorted_map(result[key])
    spec = result.get("spec")
    if isinstance(spec, Mapping):
        spec = _ordered(spec, _SPEC)
        if "encryptedData" in spec:
            spec["encryptedData"] = _sorted_map(spec["encryptedData"])
        template = spec.get("template")
        if isinstance(template, Mapping):
            template = _ordered(template, _TEMPLATE)
            if "metadata" in template:
                template["metadata"] = _meta(template["metadata"])
            if "data" in template:
                template["data"] = _sorted_map(template["data"])
            spec["template"] = template
        result["spec"] = spec
    return result


def to_json(doc: Any) -> str:
    text = json.dumps(kube_order(doc), indent=2, ensure_ascii=False)
    for char, escape in _GO_HTML_ESCAPES.items():
        text = text.replace(char, escape)
    return text + "\n"


_DUMPER: Any = None

# Go's YAML 1.1 reader (kubeseal, kubectl) also takes these as booleans; PyYAML's resolver
# does not, so it would leave them plain and kubeseal would read `namespace: n` as false.
_GO_ONLY_BOOLS = frozenset({"y", "Y", "n", "N"})


def _go_style_dumper() -> Any:
    """A SafeDumper that quotes like kubeseal's Go YAML encoder.

    Strings that would read back as another type (``"true"``, ``"123"``, ``""``) get double
    quotes, multi-line strings a literal block; other quoting is the emitter's own choice.
    """
    global _DUMPER
    if _DUMPER is None:
        import yaml

        # libyaml's C emitter when available (~15x faster; seal-tree emits thousands of docs).
        base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

        class GoStyleDumper(base):  # type: ignore[valid-type,misc]
            pass

        str_tag = "tag:yaml.org,2002:str"

        def represent_str(dumper: Any, data: str) -> Any:
            style = None
            if "\n" in data:
                style = "|"
            elif (
                data in _GO_ONLY_BOOLS
                or dumper.resolve(yaml.ScalarNode, data, (True, False)) != str_tag
            ):
                style = '"'
            return dumper.represent_scalar(str_tag, data, style=style)

        GoStyleDumper.add_representer(str, represent_str)
        _DUMPER = GoStyleDumper
    return _DUMPER


def to_yaml(doc: Any) -> str:
    import yaml

    body = yaml.dump(
        doc,
        Dumper=_go_style_dumper(),
        default_flow_style=False,
        sort_keys=True,
        allow_unicode=True,
        width=2**31 - 1,
    )
    return "---\n" + body


def dump(doc: Any, fmt: str) -> str:
    return to_yaml(doc) if fmt == "yaml" else to_json(doc)


def dump_all(docs: Iterable[Any], fmt: str) -> str:
    return "".join(dump(d, fmt) for d in docs)
