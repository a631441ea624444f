"""The clusters file of `sealkit seal-tree --clusters`: seal one tree for several clusters.

Format (YAML; paths are relative to the clusters file)::

    clusters:
      prod:
        cert: certs/prod.pem                        # a PEM file, or an http(s) URL
      staging:
        cert: https://staging.example/v1/cert.pem
        dir: ../staging-sealed                      # optional: a tree of twins per cluster

Without ``dir`` a cluster's twins sit beside each source as ``foo.<cluster>.sealed.yaml``; with
it they mirror the source tree under ``dir`` as ``foo.sealed.yaml``. The file is small and
checked strictly (unknown keys, duplicate keys, bad names, clashing directories), because a
typo here would silently seal for the wrong cluster or not at all. Every problem is one line,
`UsageError` (exit 2), raised before anything is read or sealed. Pure: no certificate is loaded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealkit._exceptions import UsageError

__all__ = ["ClusterEntry", "load_clusters", "parse_clusters"]

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # a DNS label, as `--cert NAME=`
MAX_BYTES = 64 * 1024
MAX_CLUSTERS = 64
_KEYS = {"cert", "dir"}


@dataclass(frozen=True)
class ClusterEntry:
    name: str
    cert: str  # an absolute path or an http(s) URL
    out_dir: Path | None = None  # absolute

    @property
    def cert_is_url(self) -> bool:
        return self.cert.startswith(("https://", "http://"))


def load_clusters(path: Path, tree: Path) -> list[ClusterEntry]:
    """Read and validate ``path`` for a seal-tree run over ``tree``."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UsageError(f"clusters file {path}: larger than {MAX_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except UsageError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise UsageError(f"clusters file {path}: {reason}") from None
    return parse_clusters(text, path, tree)


def parse_clusters(text: str, path: Path, tree: Path) -> list[ClusterEntry]:
    where = f"clusters file {path}"
    data = _load_yaml(text, where)
    if not isinstance(data, dict) or set(data) != {"clusters"}:
        raise UsageError(f"{where}: expected one top-level key, clusters")
    clusters = data["clusters"]
    if not isinstance(clusters, dict) or not clusters:
        raise UsageError(f"{where}: clusters must be a non-empty map of name: {{cert: ...}}")
    if len(clusters) > MAX_CLUSTERS:
        raise UsageError(f"{where}: more than {MAX_CLUSTERS} clusters")
    base = path.parent.absolute()
    tree_abs = Path(os.path.abspath(tree))
    entries: list[ClusterEntry] = []
    dirs: dict[Path, str] = {}
    for name, spec in clusters.items():
        entries.append(_entry(name, spec, where, base, tree_abs, dirs))
    return entries


def _entry(
    name: Any, spec: Any, where: str, base: Path, tree: Path, dirs: dict[Path, str]
) -> ClusterEntry:
    if not isinstance(name, str) or not NAME.match(name):
        raise UsageError(f"{where}: cluster name {str(name)!r} is not a DNS label ([a-z0-9-])")
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: cluster {name}: expected a map with cert (and dir)")
    unknown = sorted(str(k) for k in spec if k not in _KEYS)
    if unknown:
        raise UsageError(f"{where}: cluster {name}: unknown key {unknown[0]!r} (cert, dir)")
    cert = spec.get("cert")
    if not isinstance(cert, str) or not cert.strip():
        raise UsageError(f"{where}: cluster {name}: cert must be a path or an http(s) URL")
    if "://" in cert and not cert.startswith(("https://", "http://")):
        raise UsageError(f"{where}: cluster {name}: cert URL must be http(s)")
    if "://" not in cert:
        cert = os.path.normpath(base / cert)
    out_dir = None
    if "dir" in spec:
        raw = spec["dir"]
        if not isinstance(raw, str) or not raw.strip():
            raise UsageError(f"{where}: cluster {name}: dir must be a path")
        out_dir = Path(os.path.normpath(base / raw))
        if out_dir == tree or out_dir in tree.parents:
            raise UsageError(f"{where}: cluster {name}: dir must not contain the source tree")
        for other_dir, other in dirs.items():
            if out_dir == other_dir or other_dir in out_dir.parents or out_dir in other_dir.parents:
                raise UsageError(f"{where}: clusters {other} and {name} share dir {raw}")
        dirs[out_dir] = name
    return ClusterEntry(name, cert, out_dir)


def _load_yaml(text: str, where: str) -> Any:
    import yaml

    class _Strict(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def mapping(loader: Any, node: Any) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise UsageError(f"{where}: line {key_node.start_mark.line + 1}: bad map key")
            if key in out:
                line = key_node.start_mark.line + 1
                raise UsageError(f"{where}: line {line}: duplicate key {key!r}")
            out[key] = loader.construct_object(value_node, deep=True)
        return out

    _Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Strict) if d is not None]  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{where}: malformed YAML{at}: {exc.problem}") from None
    except yaml.YAMLError:
        raise UsageError(f"{where}: malformed YAML") from None
    if len(docs) != 1:
        raise UsageError(f"{where}: expected one YAML document")
    return docs[0]
