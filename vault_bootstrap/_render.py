"""Render a `Plan` for people (`+ ~ -` per field) and for machines (`--json`).

Secret values never reach this module as text: they are `Sensitive` and render as
`(sensitive)`. Long or multi-line values (policies, CA certificates) are summarised.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from ._model import Change, FieldChange, Plan
from ._redact import MASK, Sensitive

__all__ = ["plan_to_json", "render_plan"]

_SYMBOL = {"create": "+", "update": "~", "delete": "-", "rotate": "~", "adopt": "="}
_KIND_LABEL = {
    "auth_mount": "auth method",
    "secrets_mount": "secrets engine",
    "k8s_config": "kubernetes auth config",
    "k8s_role": "kubernetes auth role",
    "policy": "ACL policy",
    "db_connection": "database connection",
    "db_rotate_root": "database root credential rotation",
    "db_role": "database role",
    "kv": "KV v2 entry",
    "transit_key": "transit key",
    "state": "vault-bootstrap state",
}


def _show(value: Any, sensitive: bool) -> str:
    if sensitive or isinstance(value, Sensitive):
        return MASK
    if value is None:
        return "(none)"
    if isinstance(value, str):
        if "\n" in value.strip("\n"):
            return f"({len(value.strip().splitlines())} lines)"
        if len(value) > 100:
            return json.dumps(value[:97] + "...")
        return json.dumps(value)
    return json.dumps(value)


def _field_line(f: FieldChange) -> str:
    note = f"  # {f.note}" if f.note else ""
    if f.op == "+":
        return f"    + {f.name} = {_show(f.after, f.sensitive)}{note}"
    if f.op == "-":
        return f"    - {f.name}{note}"
    if f.sensitive:
        return f"    ~ {f.name} = {MASK}{note}"
    if isinstance(f.before, str) and isinstance(f.after, str) and "\n" in f.after.strip("\n"):
        diff = difflib.unified_diff(f.before.splitlines(), f.after.splitlines(), lineterm="", n=1)
        body = [f"        {line}" for line in list(diff)[2:]]
        return "\n".join([f"    ~ {f.name}:{note}", *body])
    return f"    ~ {f.name}: {_show(f.before, False)} -> {_show(f.after, False)}{note}"


def render_plan(plan: Plan) -> str:
    lines: list[str] = []
    for c in plan.changes:
        if c.action == "adopt":
            continue
        label = _KIND_LABEL.get(c.kind, c.kind)
        extra = " (prune)" if c.source == "prune" else ""
        if c.action == "delete" and c.kind in ("auth_mount", "secrets_mount"):
            extra += " - unmounting destroys everything stored under it"
        lines.append(f"{_SYMBOL[c.action]} {c.path}  [{label}]{extra}")
        lines.extend(_field_line(f) for f in c.fields)
    adopted = [c for c in plan.changes if c.action == "adopt"]
    for c in adopted:
        lines.append(
            f"= {c.path}  [{_KIND_LABEL.get(c.kind, c.kind)}] adopted; "
            "write-only values not re-sent"
        )
    if plan.state_changed:
        lines.append(f"~ {plan.state_path}  [{_KIND_LABEL['state']}]")
    n = plan.counts()
    if not plan.has_changes:
        lines.append("No changes. Vault matches the configuration.")
    else:
        lines.append(
            f"Plan: {n['create']} to add, {n['update']} to change, {n['delete']} to delete."
        )
    for w in plan.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines) + "\n"


def _json_value(value: Any, sensitive: bool) -> Any:
    if sensitive or isinstance(value, Sensitive):
        return MASK if value is not None else None
    return value


def _change_json(c: Change) -> dict[str, Any]:
    return {
        "action": c.action,
        "kind": c.kind,
        "path": c.path,
        "source": c.source,
        "fields": [
            {
                "name": f.name,
                "op": f.op,
                "before": _json_value(f.before, f.sensitive),
                "after": _json_value(f.after, f.sensitive),
                "sensitive": f.sensitive,
                **({"note": f.note} if f.note else {}),
            }
            for f in c.fields
        ],
    }


def plan_to_json(plan: Plan, api_calls: dict[str, Any] | None = None) -> str:
    """The plan as JSON; `api_calls` (the gateway's `CallStats.snapshot()`) is added if given."""
    doc: dict[str, Any] = {
        "format_version": 1,
        "changes": [_change_json(c) for c in plan.changes],
        "state_changed": plan.state_changed,
        "summary": plan.counts() | {"has_changes": plan.has_changes},
        "warnings": plan.warnings,
    }
    if api_calls is not None:
        doc["api_calls"] = api_calls
    return (
        json.dumps(
            doc,
            indent=2,
            sort_keys=False,
        )
        + "\n"
    )
