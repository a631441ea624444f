"""`sealkit keygen`: an offline sealing key pair in the controller's own key-Secret format.

For bring-your-own-key and disaster recovery: the key Secret manifest can be applied to the
controller's namespace (``kubectl create -f``, since upstream's ``generateName`` does not work
with ``apply``; pass ``--name`` for an apply-able manifest) and then loaded by the controller;
the certificate is what ``kubeseal --cert``/``sealkit --cert`` seal with, so secrets can be
sealed before the cluster even exists. The key pair itself comes from `sealkit.keys`
(``generate_key_and_cert``, ``key_secret_manifest``); this module only parses the options and
writes the two files, the key one 0600 and atomically, refusing to overwrite unless forced.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealkit._exceptions import InputError, UsageError

__all__ = ["KeyMaterial", "generate", "parse_duration", "write_files"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def parse_duration(text: str) -> _dt.timedelta:
    """A Go-style duration (``87600h``, ``720h0m0s``, ``1h30m``), plus ``d`` for days."""
    s = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not s or pos != len(s) or total <= 0:
        raise UsageError(f'invalid duration "{text}" (e.g. 87600h, 720h, 30d)')
    return _dt.timedelta(seconds=total)


def _check_name(value: str, what: str, max_len: int = 253) -> None:
    if not value or len(value) > max_len or not _NAME_RE.match(value):
        raise UsageError(f'invalid {what} "{value}": must be a lowercase RFC 1123 name')


@dataclass(frozen=True)
class KeyMaterial:
    manifest: dict[str, Any]
    key_secret_yaml: bytes
    cert_pem: bytes
    fingerprint: str
    not_after: _dt.datetime


def generate(
    *,
    bits: int = 4096,
    namespace: str = "kube-system",
    name: str | None = None,
    generate_name: str = "sealed-secrets-key",
    cn: str = "",
    ttl: _dt.timedelta | None = None,
    now: _dt.datetime | None = None,
) -> KeyMaterial:
    """Generate the key pair and render the key Secret (YAML) and certificate (PEM)."""
    from cryptography.hazmat.primitives import serialization

    from sealkit.keys import (
        DEFAULT_KEY_TTL,
        fingerprint,
        generate_key_and_cert,
        key_secret_manifest,
    )
    from sealkit.output import to_yaml

    if bits < 2048 or bits % 8:
        raise UsageError(f"invalid --key-size {bits}: must be a multiple of 8, at least 2048")
    _check_name(namespace, "namespace", 63)
    if name:
        _check_name(name, "name")
    else:
        # upstream: the prefix must match [a-z0-9-], at most 245 characters
        if not re.fullmatch(r"[a-z0-9-]{1,245}", generate_name):
            raise UsageError(f'invalid name prefix "{generate_name}"')
    key, cert = generate_key_and_cert(bits, cn=cn, ttl=ttl or DEFAULT_KEY_TTL, now=now)
    manifest = key_secret_manifest(
        key, cert, namespace=namespace, name=name, generate_name=generate_name
    )
    return KeyMaterial(
        manifest=manifest,
        key_secret_yaml=to_yaml(manifest).encode("utf-8"),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        fingerprint=fingerprint(key.public_key()),
        not_after=cert.not_valid_after_utc,
    )


def write_files(
    material: KeyMaterial, key_secret_file: Path, cert_file: Path, *, force: bool = False
) -> None:
    """Write both files or neither: existence is checked for both before either is written."""
    from sealkit.files import atomic_write

    if key_secret_file.resolve() == cert_file.resolve():
        raise UsageError("the key Secret file and the certificate file must differ")
    for path in (key_secret_file, cert_file):
        if not force and path.exists():
            raise InputError(f"{path}: already exists (use --force to overwrite)")
        if not path.parent.is_dir():
            raise InputError(f"{path.parent}: no such directory")
    atomic_write(key_secret_file, material.key_secret_yaml, mode=0o600, overwrite=force)
    try:
        atomic_write(cert_file, material.cert_pem, mode=0o644, overwrite=force)
    except BaseException:
        # all or nothing: a key without its certificate is a half-done keygen
        if not force:
            key_secret_file.unlink(missing_ok=True)
        raise
