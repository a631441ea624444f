"""Load the sealing certificate the way kubeseal does.

The first PEM certificate in the data is used; its key must be RSA and it must not have
expired (kubeseal #791). The clock is injectable (``now=``) so tests need no time travel.
"""

from __future__ import annotations

import time

from sealkit._exceptions import CertError
from sealkit._record import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as _dt

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.x509 import Certificate

__all__ = ["load_certificate", "load_public_key"]

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


def _first_pem_certificate(pem: bytes) -> bytes | None:
    """The first ``CERTIFICATE`` PEM block (plain ``find``: no regex to compile at start)."""
    start = pem.find(_BEGIN)
    end = pem.find(_END, start + len(_BEGIN)) if start >= 0 else -1
    return None if end < 0 else pem[start : end + len(_END)]


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)  # Go's, whatever the locale


def load_certificate(pem: bytes, now: _dt.datetime | None = None) -> Certificate:
    """The first certificate in ``pem``, checked to be RSA and unexpired at ``now`` (UTC).

    Raises `CertError` with kubeseal's messages: no certificate, not RSA, or expired.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    block = _first_pem_certificate(pem)
    if block is None:
        raise CertError("data does not contain any valid RSA or ECDSA certificates")
    try:
        cert = x509.load_pem_x509_certificate(block)
        public_key = cert.public_key()
    except (ValueError, TypeError):
        raise CertError("data does not contain any valid RSA or ECDSA certificates") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        kind = type(public_key).__name__.removesuffix("PublicKey") or "unknown"
        raise CertError(f"expected RSA public key but found {kind} key")
    end = cert.not_valid_after_utc
    _check_not_expired((end.year, end.month, end.day, end.hour, end.minute, end.second), now)
    return cert


def load_public_key(pem: bytes, now: _dt.datetime | None = None) -> RSAPublicKey:
    """The RSA public key of the first certificate, with `load_certificate`'s checks.

    The CLI's cold start is benchmarked against Go, and importing ``cryptography.x509`` costs
    more than everything else sealing needs. So this reads just the two fields it needs
    (``validity.notAfter`` and ``subjectPublicKeyInfo``) from the certificate's DER and hands
    the key to ``load_der_public_key``. Anything unexpected in the DER falls back to the full
    X.509 parser, so both paths accept and refuse the same inputs.
    """
    block = _first_pem_certificate(pem)
    if block is not None:
        fields = _tbs_fields(block)
        key = _rsa_from_spki(fields[1]) if fields is not None else None
        if fields is not None and key is not None:
            _check_not_expired(fields[0], now)
            return key
    full = load_certificate(pem, now=now).public_key()
    return full  # type: ignore[return-value]  # load_certificate checked it is RSA


_Time = tuple[int, int, int, int, int, int]  # UTC year, month, day, hour, minute, second


def _check_not_expired(not_after: _Time, now: _dt.datetime | None) -> None:
    """Without ``now``, against the clock in epoch seconds: the seal path then needs no
    ``datetime`` import (2 ms, more than the seal)."""
    if now is None:
        expired = time.time() > _epoch(not_after)
    else:
        import datetime as _dt

        if now.tzinfo is None:
            now = now.replace(tzinfo=_dt.UTC)
        expired = now > _dt.datetime(*not_after, tzinfo=_dt.UTC)
    if expired:
        year, month, day = not_after[:3]
        raise CertError(
            f"failed to encrypt using an expired certificate on {_MONTHS[month - 1]} {day}, {year}"
        )


def _epoch(t: _Time) -> int:
    """Seconds since 1970 of a valid UTC time (the proleptic Gregorian day count of
    ``datetime.toordinal``; 719163 is 1970-01-01's)."""
    year, month, day, hour, minute, second = t
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 + _DAYS_BEFORE[month - 1] + day
    if month > 2 and _leap(year):
        days += 1
    return (days - 719163) * 86400 + hour * 3600 + minute * 60 + second


_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_DAYS_IN = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``pos``; ValueError if bad."""
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(der):
        raise ValueError("truncated DER")
    return tag, pos, end


def _tbs_fields(pem_block: bytes) -> tuple[_Time, bytes] | None:
    """(notAfter, SubjectPublicKeyInfo DER) of one PEM certificate, or None if unsure."""
    import base64
    import binascii

    body = b"".join(
        line for line in pem_block.splitlines() if line and not line.startswith(b"-----")
    )
    try:
        der = base64.b64decode(body, validate=True)
        tag, cert_start, cert_end = _tlv(der, 0)
        if tag != 0x30 or cert_end != len(der):
            return None
        tag, pos, tbs_end = _tlv(der, cert_start)  # tbsCertificate
        if tag != 0x30:
            return None
        if der[pos] == 0xA0:  # [0] EXPLICIT version
            pos = _tlv(der, pos)[2]
        expected = (0x02, 0x30, 0x30)  # serialNumber, signature, issuer
        for want in expected:
            tag, _, end = _tlv(der, pos)
            if tag != want:
                return None
            pos = end
        tag, vpos, vend = _tlv(der, pos)  # validity
        if tag != 0x30:
            return None
        vpos = _tlv(der, vpos)[2]  # notBefore
        tag, tstart, tend = _tlv(der, vpos)  # notAfter
        not_after = _asn1_time(tag, der[tstart:tend])
        pos = vend
        tag, _, end = _tlv(der, pos)  # subject
        if tag != 0x30:
            return None
        tag, _, spki_end = _tlv(der, end)  # subjectPublicKeyInfo
        if tag != 0x30 or spki_end > tbs_end:
            return None
        return not_after, der[end:spki_end]
    except (IndexError, ValueError, binascii.Error):
        return None


_RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1


def _rsa_from_spki(spki: bytes) -> RSAPublicKey | None:
    """The RSA key of a SubjectPublicKeyInfo via public ``RSAPublicNumbers``; None if unsure.

    (``serialization.load_der_public_key`` would import the whole serialization package,
    including its SSH support, which alone costs more than the rest of a seal.)
    """
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        tag, pos, end = _tlv(spki, 0)
        if tag != 0x30 or end != len(spki):
            return None
        tag, apos, aend = _tlv(spki, pos)  # AlgorithmIdentifier
        tag_oid, ostart, oend = _tlv(spki, apos)
        if tag != 0x30 or tag_oid != 0x06 or spki[ostart:oend] != _RSA_ENCRYPTION_OID:
            return None
        tag, bstart, bend = _tlv(spki, aend)  # BIT STRING
        if tag != 0x03 or bend != end or spki[bstart] != 0:
            return None
        key_der = spki[bstart + 1 : bend]
        tag, kpos, kend = _tlv(key_der, 0)  # RSAPublicKey
        if tag != 0x30 or kend != len(key_der):
            return None
        tag_n, nstart, nend = _tlv(key_der, kpos)
        tag_e, estart, eend = _tlv(key_der, nend)
        if tag_n != 0x02 or tag_e != 0x02 or eend != kend:
            return None
        n = int.from_bytes(key_der[nstart:nend], "big", signed=True)
        e = int.from_bytes(key_der[estart:eend], "big", signed=True)
        if n <= 0 or e <= 0:
            return None
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (IndexError, ValueError):
        return None


def _asn1_time(tag: int, raw: bytes) -> _Time:
    text = raw.decode("ascii")
    if tag == 0x17 and len(text) == 13 and text.endswith("Z"):  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif not (tag == 0x18 and len(text) == 15 and text.endswith("Z")):
        raise ValueError("unsupported ASN.1 time")
    if not text[:14].isdigit():
        raise ValueError("bad ASN.1 time")
    fields = (text[0:4], text[4:6], text[6:8], text[8:10], text[10:12], text[12:14])
    year, month, day, hour, minute, second = (int(f) for f in fields)
    # datetime's own range checks: anything else is left to the full X.509 parser
    leap_day = month == 2 and _leap(year)
    if not (
        1 <= year <= 9999
        and 1 <= month <= 12
        and 1 <= day <= _DAYS_IN[month - 1] + leap_day
        and hour < 24
        and minute < 60
        and second < 60
    ):
        raise ValueError("bad ASN.1 time")
    return year, month, day, hour, minute, second
