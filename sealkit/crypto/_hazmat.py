"""Hazardous materials: the Bitnami Sealed Secrets hybrid scheme, byte for byte.

Blob layout (one per ``encryptedData`` value, fresh session key every time)::

    uint16 big-endian k | RSA-OAEP(session_key, label) (k bytes) | AES-GCM(ct || 16-byte tag)

RSA-OAEP uses SHA-256 for both the hash and MGF1, and the scope label. AES-256-GCM uses a
12-byte zero nonce and no AAD; that is safe only because every session key encrypts exactly one
value. Nothing outside `sealkit.crypto` should import this module.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealkit._exceptions import UnsealError

SESSION_KEY_BYTES = 32
_ACCEPTED_SESSION_KEY_SIZES = (16, 24, 32)  # Go's aes.NewCipher accepts all three
_NONCE = b"\x00" * 12
_TAG_BYTES = 16


def _oaep(label: bytes | None) -> padding.OAEP:
    # Cluster-wide scope uses the empty label; `None` and b"" must mean the same thing.
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()),
        algorithm=hashes.SHA256(),
        label=label or None,
    )


def _seal_with(
    session_key: bytes, plaintext: bytes, public_key: rsa.RSAPublicKey, label: bytes
) -> bytes:
    """Seal with a caller-chosen session key: the seam deterministic tests inject through."""
    wrapped = public_key.encrypt(session_key, _oaep(label))
    sealed = AESGCM(session_key).encrypt(_NONCE, plaintext, None)
    return struct.pack(">H", len(wrapped)) + wrapped + sealed


def seal(plaintext: bytes, public_key: rsa.RSAPublicKey, label: bytes) -> bytes:
    return _seal_with(os.urandom(SESSION_KEY_BYTES), plaintext, public_key, label)


def unseal_with_index(
    blob: bytes, private_keys: Sequence[rsa.RSAPrivateKey], label: bytes
) -> tuple[bytes, int]:
    """Try every key; return the plaintext and the index of the key that opened the blob.

    Every failure (short blob, bad length prefix, OAEP padding, odd session key size, GCM tag)
    ends in the same `UnsealError`, so callers learn nothing about why.
    """
    if len(blob) < 2:
        raise UnsealError()
    (k,) = struct.unpack(">H", blob[:2])
    if len(blob) < 2 + k + _TAG_BYTES:
        raise UnsealError()
    wrapped, sealed = blob[2 : 2 + k], blob[2 + k :]
    oaep = _oaep(label)
    for index, key in enumerate(private_keys):
        try:
            session_key = key.decrypt(wrapped, oaep)
            if len(session_key) not in _ACCEPTED_SESSION_KEY_SIZES:
                continue
            return AESGCM(session_key).decrypt(_NONCE, sealed, None), index
        except Exception:  # noqa: BLE001 - every failure is the same opaque error
            continue
    raise UnsealError()
