"""Seal and unseal single values in the Bitnami Sealed Secrets wire format.

This is the "recipes" layer: callers pass bytes, an RSA key and the scope label
(`sealkit.scopes.label_for`) and get bytes back. The RSA-OAEP/AES-GCM details live in the
private `_hazmat` module. Example::

    blob = seal(b"s3cret", cert_public_key, b"myns/mysecret")
    text = b64encode(blob)            # what goes into encryptedData
    unseal(b64decode(text), [private_key], b"myns/mysecret") == b"s3cret"

Every decryption failure raises the one opaque `sealkit.UnsealError`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sealkit._exceptions import InputError
from sealkit.crypto._hazmat import seal, unseal_with_index

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["b64decode", "b64encode", "seal", "unseal", "unseal_with_index"]

_LINE_BREAKS = bytes.maketrans(b"", b"")


def unseal(blob: bytes, private_keys: Sequence[RSAPrivateKey], label: bytes) -> bytes:
    """Decrypt one blob with whichever key opens it (raises `UnsealError`)."""
    return unseal_with_index(blob, private_keys, label)[0]


def b64encode(data: bytes) -> str:
    """Standard, padded base64 (RFC 4648 §4) as kubeseal writes it."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str | bytes) -> bytes:
    """Strict standard base64 that, like Go, ignores ``\\r`` and ``\\n`` (line-wrapped input).

    Raises `InputError` for any other character outside the alphabet or bad padding.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    raw = raw.translate(_LINE_BREAKS, b"\r\n")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("illegal base64 data") from None
