"""Refuse a prune that would delete everything vault-bootstrap owns, unless told so.

Why: a config whose sections went missing (a bad merge, the wrong file) with ``--prune`` planned
to delete every mount, role and policy the tool had created (issue 12). Deleting all of it is
sometimes wanted (decommissioning), so it stays possible, but only with ``--prune-all``.
"""

from __future__ import annotations

from ._errors import PlanError
from ._model import Plan

__all__ = ["check_prune"]


def check_prune(plan: Plan, *, allow_all: bool) -> None:
    """Raise `PlanError` when the plan deletes and nothing owned would be left."""
    deletes = [c for c in plan.changes if c.action == "delete"]
    if not deletes or allow_all or plan.new_state.created:
        return
    raise PlanError(
        f"prune would delete all {len(deletes)} objects vault-bootstrap owns and leave none; "
        "check the config, or pass --prune-all to really delete everything"
    )
