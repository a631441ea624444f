"""The stack's own OpenAPI v2 document -> one JSON Schema file per kind, for kubeconform.

Why not kubeconform's default schemas: they are downloaded from GitHub (no traffic but to
registries here) and describe someone else's apiserver; the stack's `/openapi/v2` is exactly what
the apiserver we install on accepts, CRDs included (a ServiceMonitor validates once its CRD is
installed). The conversion does what `openapi2jsonschema --strict` does: every `$ref` reachable
from a kind is copied into that file's `definitions`; objects with `properties` get
`additionalProperties: false` (a misspelt field fails) unless they preserve unknown fields;
optional fields accept `null`; int-or-string and quantities accept both forms.

File names follow the kubeconform template `SCHEMA_LOCATION` below.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_LOCATION", "write_schemas"]

SCHEMA_LOCATION = "{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json"
_REF = "#/definitions/"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _file_name(group: str, version: str, kind: str) -> str:
    # kubeconform: Group is the apiVersion's first part ("v1" for the core group).
    return f"{kind.lower()}_{group or version}_{version}.json"


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            out.add(ref[len(_REF) :])
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _closure(definitions: dict[str, Any], root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(definitions[name], found)
        todo.extend(found - seen)
    return seen


def _nullable(t: Any) -> Any:
    return [t, "null"] if isinstance(t, str) else t


def _strict(node: Any, *, top: bool = False) -> Any:
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _strict(v) for k, v in node.items() if k not in ("properties", "additionalProperties")
    }
    if node.get("format") == "int-or-string":
        out.pop("type", None)
        out.pop("format", None)
        out["oneOf"] = [{"type": ["string", "null"]}, {"type": "integer"}]
        return out
    if "properties" in node:
        out["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
        if (
            not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node
        ):
            out["additionalProperties"] = False
    if "additionalProperties" in node:
        out["additionalProperties"] = _strict(node["additionalProperties"])
    if "$ref" in out and len(out) > 1:  # JSON Schema draft 4 ignores siblings of $ref
        out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
    if "type" in out and not top:
        out["type"] = _nullable(out["type"])
    return out


def write_schemas(openapi_v2: dict[str, Any], target: Path) -> int:
    """Write one schema per group/version/kind into `target`; returns how many."""
    definitions = {name: _strict(d) for name, d in openapi_v2["definitions"].items()}
    if _QUANTITY in definitions:
        definitions[_QUANTITY] = {"oneOf": [{"type": ["string", "null"]}, {"type": "number"}]}
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, raw in openapi_v2["definitions"].items():
        for gvk in raw.get("x-kubernetes-group-version-kind", []):
            schema = copy.deepcopy(definitions[name])
            if isinstance(schema.get("type"), list):
                schema["type"] = "object"
            reachable = _closure(openapi_v2["definitions"], name)
            schema["definitions"] = {n: definitions[n] for n in sorted(reachable)}
            file = target / _file_name(gvk.get("group", ""), gvk["version"], gvk["kind"])
            file.write_text(json.dumps(schema))
            count += 1
    return count
