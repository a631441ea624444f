"""What `/v1/verify` and `/v1/rotate` do to one parsed SealedSecret: `sealkit.model`'s
`verify` and `reencrypt` (the same code as the CLI and the reconciler), with the API's errors.

Hardening (upstream's advisories GHSA-jpp5-6cf2-prqh, PR #2019/#2049/#1885): neither ever
renders ``template.data``; they only decrypt ``encryptedData``, so a caller cannot make the
controller echo a plaintext through a template (no decryption oracle). Both count the RSA
private-key operations they spend (`Work`), which the rate limiter charges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from controller.http.body import BadRequest
from sealkit import InputError, UnsealError
from sealkit.model import RsaOps as Work
from sealkit.model import reencrypt, verify

__all__ = ["NotOpenable", "Work", "rotate_sealed_secret", "verify_sealed_secret"]


class NotOpenable(Exception):
    """Some encryptedData value does not open with any loaded key (409)."""


def verify_sealed_secret(
    sealed: Mapping[str, Any], private_keys: Sequence[RSAPrivateKey], work: Work | None = None
) -> bool:
    """True if every ``encryptedData`` value (or the deprecated ``data`` blob) opens."""
    return verify(sealed, private_keys, work)


def rotate_sealed_secret(
    sealed: Mapping[str, Any],
    private_keys: Sequence[RSAPrivateKey],
    public_key: RSAPublicKey,
    work: Work | None = None,
) -> tuple[dict[str, Any], bool]:
    """Re-seal with ``public_key``, keeping the scope; `NotOpenable` (409) or `BadRequest`."""
    try:
        return reencrypt(sealed, private_keys, public_key, work)
    except UnsealError:
        raise NotOpenable() from None
    except InputError as exc:
        raise BadRequest(exc.message) from None
