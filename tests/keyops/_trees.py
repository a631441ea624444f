"""Known trees of SealedSecrets for the key-lifecycle tests and the bench (RSA-2048 keys)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sealkit.keys import fingerprint, generate_key_and_cert, key_secret_manifest
from sealkit.model import seal_secret
from sealkit.output import to_yaml

VALUE = "keyops-known-plaintext-5521"


@dataclass
class KnownTree:
    root: Path
    expected: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # ref -> fps
    files: dict[tuple[str, str], Path] = field(default_factory=dict)


def make_key(bits: int = 2048) -> tuple[Any, Any]:
    return generate_key_and_cert(bits)


def key_file(path: Path, *pairs: tuple[Any, Any], namespace: str = "kube-system") -> Path:
    """A `kind: List` of key Secrets, like a backup file."""
    items = [
        key_secret_manifest(k, c, namespace=namespace, name=f"sealed-secrets-key{i}")
        for i, (k, c) in enumerate(pairs)
    ]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def sealed(name: str, ns: str, public_key: Any, **values: str) -> dict[str, Any]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": values or {"password": VALUE},
    }
    return seal_secret(secret, public_key)


def build_tree(
    root: Path, layout: list[tuple[str, str, Any]], *, fmt: str = "yaml", per_file: int = 1
) -> KnownTree:
    """`layout` = [(namespace, name, key)]; files of `per_file` SealedSecrets each."""
    tree = KnownTree(root)
    root.mkdir(parents=True, exist_ok=True)
    chunk: list[dict[str, Any]] = []
    refs: list[tuple[str, str]] = []
    n_file = 0

    def flush() -> None:
        nonlocal chunk, refs, n_file
        if not chunk:
            return
        sub = root / f"app{n_file % 10}"
        sub.mkdir(exist_ok=True)
        path = sub / f"s{n_file:04d}.sealed.{fmt}"
        if fmt == "json":
            path.write_text("".join(json.dumps(d, indent=2) + "\n" for d in chunk))
        else:
            path.write_text("".join(to_yaml(d) for d in chunk))
        for ref in refs:
            tree.files[ref] = path
        chunk, refs = [], []
        n_file += 1

    for ns, name, key in layout:
        chunk.append(sealed(name, ns, key.public_key(), password=VALUE, user=f"u-{name}"))
        refs.append((ns, name))
        tree.expected[(ns, name)] = {fingerprint(key.public_key())}
        if len(chunk) >= per_file:
            flush()
    flush()
    return tree
