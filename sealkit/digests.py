"""The seal-tree digest store: the keyed source digest that tells a stale twin without the key.

Ciphertexts are random, so a twin cannot be compared with a fresh seal, and the private key is
not where `--check` runs. Each sealed document therefore carries, in its *outer* metadata (never
the template, so nothing reaches the Secret in the cluster):

``sealkit.dev/source-digest: hmac-sha256:<key id>:<hex>``
    HMAC-SHA256 over the canonical source (name, namespace, scope, every non-value field of the
    Secret, and the value bytes), keyed with a 32-byte *digest key*.
``sealkit.dev/cert-fingerprint: SHA256:…``
    The sealing certificate's public-key fingerprint (public information).

Threat model. The repository (twins included) may be read by anyone; plaintext and the digest
key exist only where plaintext exists (the operator's checkout, the CI job that seals). A plain
SHA-256 of the values would let every reader of the repository confirm guesses of low-entropy
values offline ("is the DB password `hunter2`?"); salting or a slow KDF only slows that down.
An HMAC under a key that never leaves the plaintext's side reveals nothing about the values to
someone without the key, while `--check` (which needs the plaintext anyway) can recompute it.
The key id (first 8 bytes of SHA-256 over a prefix and the key) only tells "another digest key"
apart from "stale". File times are no help: Git does not keep them. Out of scope: the digest is
not a signature. Whoever can write the repository can write any annotation (or any ciphertext);
`--check` catches forgotten reseals, not tampering, which the controller's decryption does.

The digest key comes from ``--digest-key-file`` / ``SEALKIT_DIGEST_KEY_FILE``, else
``<DIR>/.sealkit/digest.key``, created on first use (mode 0600) next to a ``.gitignore``
holding ``*`` so Git never picks it up. Share it with everyone who seals the same tree through
the channel that carries the plaintext; with another key every twin looks stale and is resealed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealkit._exceptions import InputError
from sealkit.model import secret_values
from sealkit.scopes import Scope

__all__ = [
    "DEFAULT_DIGEST_KEY",
    "DigestKey",
    "default_digest_key_path",
    "load_or_create_digest_key",
    "new_digest_key",
    "save_digest_key",
    "source_digest",
]

DEFAULT_DIGEST_KEY = Path(".sealkit") / "digest.key"
_KEY_ID_PREFIX = b"sealkit digest key id\0"


@dataclass(frozen=True)
class DigestKey:
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(_KEY_ID_PREFIX + self.secret).hexdigest()[:16]


def load_or_create_digest_key(path: Path, *, create: bool) -> DigestKey | None:
    """Read the digest key (64 hex chars); create it (0600, self-ignoring dir) if asked.

    Returns None when the file is missing and ``create`` is false.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            return None
        return _create_digest_key(path)
    except (OSError, UnicodeDecodeError):
        raise InputError(f"{path}: cannot read digest key") from None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) < 16:
        raise InputError(f"{path}: digest key must be at least 32 hex characters")
    return DigestKey(raw)


def new_digest_key() -> DigestKey:
    return DigestKey(secrets.token_bytes(32))


def _create_digest_key(path: Path) -> DigestKey:
    key = new_digest_key()
    save_digest_key(path, key)
    return key


def save_digest_key(path: Path, key: DigestKey) -> None:
    """Write a new digest key file (0600, never over an existing one)."""
    from sealkit.files import atomic_write

    raw = key.secret
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.name == ".sealkit":
        ignore = path.parent / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# sealkit: never commit the digest key\n*\n", encoding="ascii")
    atomic_write(path, (raw.hex() + "\n").encode("ascii"), mode=0o600, overwrite=False)


def source_digest(
    secret: Mapping[str, Any], identity: tuple[str, str, Scope], key: DigestKey
) -> str:
    """``hmac-sha256:<key id>:<hex>`` over the canonical source Secret (see module doc)."""
    rest = {k: v for k, v in secret.items() if k not in ("data", "stringData", "status")}
    values = {k: v.hex() for k, v in sorted(secret_values(secret).items())}
    namespace, name, scope = identity
    try:
        canonical = _canonical_json(
            {
                "v": 1,
                "namespace": namespace,
                "name": name,
                "scope": scope.value,
                "secret": rest,
                "values": values,
            }
        )
    except TypeError:
        raise InputError("Secret has map keys that are not strings") from None
    mac = hmac.new(key.secret, canonical, hashlib.sha256).hexdigest()
    return f"hmac-sha256:{key.key_id}:{mac}"


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def default_digest_key_path(root: Path, override: str | os.PathLike[str] | None) -> Path:
    return Path(override) if override else root / DEFAULT_DIGEST_KEY
