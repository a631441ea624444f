"""Dependency waves: split a plan's ordered changes into groups that may run concurrently.

Pure logic, no I/O (unit-tested with plain `Change`s). The planner already orders changes so
that every dependency comes first (`KIND_ORDER` for creates/updates, the reverse for deletes).
A wave is a maximal run of consecutive changes none of which depends on another change of the
same run, so running each wave concurrently, and the waves one after another, keeps every order
the plan relies on: a mount before its config and roles, a database connection before its
rotate-root and roles, policies before the auth roles naming them, and the reverse for deletes.
Two changes to the same path are never in one wave.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._model import Change

__all__ = ["DEPENDS_ON", "depends", "waves"]

# kind -> kinds it must come after when created or updated (deletes: the reverse).
DEPENDS_ON: dict[str, frozenset[str]] = {
    "auth_mount": frozenset(),
    "secrets_mount": frozenset(),
    "policy": frozenset(),
    "k8s_config": frozenset({"auth_mount"}),
    "db_connection": frozenset({"secrets_mount"}),
    "db_rotate_root": frozenset({"secrets_mount", "db_connection"}),
    "db_role": frozenset({"secrets_mount", "db_connection", "db_rotate_root"}),
    "k8s_role": frozenset({"auth_mount", "k8s_config", "policy"}),
    "kv": frozenset({"secrets_mount"}),
    "transit_key": frozenset({"secrets_mount"}),
    # Anything else (e.g. kinds added later) conservatively depends on everything.
}


def depends(later: Change, earlier: Change) -> bool:
    """Must `later` wait for `earlier` to finish? (Both directions of a kind dependency count,
    which covers deletes running in reverse order and a delete next to a create.)"""
    if later.path == earlier.path:
        return True
    a, b = later.kind, earlier.kind
    if a not in DEPENDS_ON or b not in DEPENDS_ON:
        return True
    return b in DEPENDS_ON[a] or a in DEPENDS_ON[b]


def waves(changes: Sequence[Change]) -> list[list[Change]]:
    """Consecutive groups of `changes` (order kept) with no dependency inside a group."""
    out: list[list[Change]] = []
    current: list[Change] = []
    kinds: dict[str, Change] = {}  # one representative per kind in the current wave
    paths: set[str] = set()
    for c in changes:
        clash = c.path in paths or any(depends(c, other) for other in kinds.values())
        if clash and current:
            out.append(current)
            current, kinds, paths = [], {}, set()
        current.append(c)
        kinds.setdefault(c.kind, c)
        paths.add(c.path)
    if current:
        out.append(current)
    return out
