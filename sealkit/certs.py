"""Load the sealing certificate the way kubeseal does.

The first PEM certificate in the data is used; its key must be RSA and it must not have
expired (kubeseal #791). The clock is injectable (``now=``) so tests need no time travel.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import TYPE_CHECKING

from sealkit._exceptions import CertError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.x509 import Certificate

__all__ = ["load_certificate", "load_public_key"]

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL
)


def load_certificate(pem: bytes, now: _dt.datetime | None = None) -> Certificate:
    """The first certificate in ``pem``, checked to be RSA and unexpired at ``now`` (UTC).

    Raises `CertError` with kubeseal's messages: no certificate, not RSA, or expired.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    match = _PEM_CERT.search(pem)
    if match is None:
        raise CertError("data does not contain any valid RSA or ECDSA certificates")
    try:
        cert = x509.load_pem_x509_certificate(match.group(0))
        public_key = cert.public_key()
    except (ValueError, TypeError):
        raise CertError("data does not contain any valid RSA or ECDSA certificates") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        kind = type(public_key).__name__.removesuffix("PublicKey") or "unknown"
        raise CertError(f"expected RSA public key but found {kind} key")
    now = now or _dt.datetime.now(_dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.UTC)
    not_after = cert.not_valid_after_utc
    if now > not_after:
        raise CertError(
            "failed to encrypt using an expired certificate on "
            f"{not_after.strftime('%B')} {not_after.day}, {not_after.year}"
        )
    return cert


def load_public_key(pem: bytes, now: _dt.datetime | None = None) -> RSAPublicKey:
    """The RSA public key of `load_certificate`'s certificate."""
    key = load_certificate(pem, now=now).public_key()
    return key  # type: ignore[return-value]  # checked RSA above
