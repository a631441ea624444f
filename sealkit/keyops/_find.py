"""Find the SealedSecrets of a tree (the input of `keys report`, `reencrypt-tree`, `retire`).

Files are found like `sealkit scan` finds them (`sealkit.scan.discover_files`: `.yaml`,
`.yml`, `.json`, hidden and vendored directories skipped). A file that
does not parse is reported by name and skipped: GitOps trees hold Helm templates and other
non-YAML files with those suffixes, and one of them must not stop a report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealkit._exceptions import InputError

__all__ = ["SealedRef", "find_sealed"]


@dataclass(frozen=True)
class SealedRef:
    """One SealedSecret found in a file (`obj` is the parsed document, read-only by contract)."""

    path: Path
    line: int
    obj: Mapping[str, Any]

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def _is_sealed(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and obj.get("kind") == "SealedSecret"
        and str(obj.get("apiVersion") or "").startswith("bitnami.com/")
    )


def find_sealed(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[SealedRef], list[str]]:
    """Every SealedSecret under `paths`, in file order, and the files that could not be read."""
    from sealkit.scan import discover_files, iter_manifests, read_documents, read_file_text

    found: list[SealedRef] = []
    skipped: list[str] = []
    for path in discover_files(paths):
        try:
            text = read_file_text(path)
            if "SealedSecret" not in text:
                continue
            docs = read_documents(text, str(path))
        except InputError:
            skipped.append(str(path))
            continue
        for doc in docs:
            for obj, line in iter_manifests(doc):
                if _is_sealed(obj):
                    found.append(SealedRef(path, line, obj))
    return found, skipped
