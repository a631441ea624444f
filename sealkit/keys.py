"""Private keys: load them for offline unsealing, generate them like the controller does.

Accepted key inputs (`load_private_keys`), as kubeseal's ``--recovery-private-key``:

* PEM, PKCS#1 (``RSA PRIVATE KEY``) or PKCS#8 (``PRIVATE KEY``), one or more blocks;
* a controller key Secret in YAML or JSON (its ``data["tls.key"]`` is used);
* a ``kind: List`` of key Secrets (``kubectl get secret -l ... -o yaml``), or several documents.

`generate_key_and_cert` and `key_secret_manifest` produce exactly what the upstream controller
creates (RSA, self-signed cert with KeyUsage EncipherOnly only, CA=true; a ``kubernetes.io/tls``
Secret labelled ``sealedsecrets.bitnami.com/sealed-secrets-key=active``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
    from cryptography.x509 import Certificate

__all__ = [
    "DEFAULT_KEY_BITS",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_KEY_TTL",
    "KeySecret",
    "SEALED_SECRETS_KEY_LABEL",
    "check_rsa_key",
    "fingerprint",
    "generate_key_and_cert",
    "key_secret_manifest",
    "load_private_keys",
    "parse_key_secret",
    "private_key_pem",
]

SEALED_SECRETS_KEY_LABEL = "sealedsecrets.bitnami.com/sealed-secrets-key"
DEFAULT_KEY_PREFIX = "sealed-secrets-key"
DEFAULT_KEY_BITS = 4096
DEFAULT_KEY_TTL = _dt.timedelta(hours=87600)

_PEM_KEY = re.compile(
    rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----", re.DOTALL
)
# Go's x509 KeyUsage with only EncipherOnly set: BIT STRING, 0 unused bits, byte 0x01.
# (cryptography's KeyUsage refuses encipher_only without key_agreement, so encode it raw.)
_KEY_USAGE_ENCIPHER_ONLY_DER = b"\x03\x02\x00\x01"


def load_private_keys(data: bytes) -> list[RSAPrivateKey]:
    """Every RSA private key in ``data`` (PEM, key Secret YAML/JSON, or a List of them).

    Raises `InputError` if nothing usable is found or a key is not RSA; the message never
    contains key material.
    """
    if b"-----BEGIN" in data:
        blocks = [m.group(0) for m in _PEM_KEY.finditer(data)]
        if not blocks:
            raise InputError("no PEM private key found")
        return [_load_pem_key(block) for block in blocks]
    return _keys_from_manifests(data)


def _keys_from_manifests(data: bytes) -> list[RSAPrivateKey]:
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(data) if d is not None]
    except yaml.YAMLError:
        raise InputError("cannot parse private key file as PEM, YAML or JSON") from None
    secrets_: list[Mapping[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, Mapping):
            raise InputError("private key file is neither PEM nor a key Secret")
        if isinstance(doc.get("items"), list):
            secrets_.extend(i for i in doc["items"] if isinstance(i, Mapping))
        else:
            secrets_.append(doc)
    keys = [parse_key_secret(s).private_key for s in secrets_ if s.get("kind") in (None, "Secret")]
    if not keys:
        raise InputError("no key Secret found in private key file")
    return keys


@dataclass(frozen=True)
class KeySecret:
    """One parsed key Secret: its RSA key, and its certificate when asked for (`need_cert`)."""

    name: str
    namespace: str
    private_key: RSAPrivateKey = field(repr=False)
    certificate: Certificate | None
    creation_timestamp: Any = None


def parse_key_secret(
    secret: Mapping[str, Any], *, need_cert: bool = False, quick_check: bool = False
) -> KeySecret:
    """The ONE key-Secret parser (``--recovery-private-key`` and the controller's key ring).

    ``tls.key`` (PKCS#1 or PKCS#8 PEM, RSA) is always required. Recovery needs nothing else (a
    backup's ``tls.crt`` is ignored); with ``need_cert`` (the controller serves the certificate)
    the first certificate of ``tls.crt`` must exist and match the key. ``quick_check`` replaces
    OpenSSL's full RSA validation with `check_rsa_key` (see there; the controller's key ring).
    Raises `InputError` with a one-line reason that never contains key material.
    """
    from cryptography import x509

    from sealkit.certs import _first_pem_certificate
    from sealkit.crypto import b64decode

    meta = secret.get("metadata") or {}
    name = str(meta.get("name") or "")
    data = secret.get("data") or {}
    value = data.get("tls.key") if isinstance(data, Mapping) else None
    if not isinstance(value, str):
        raise InputError(f"key Secret {name!r} has no data.tls.key")
    crt = data.get("tls.crt") if need_cert else None
    if need_cert and not isinstance(crt, str):
        raise InputError(f"key Secret {name!r} has no data.tls.crt")
    try:
        key = _load_pem_key(b64decode(value), quick_check=quick_check)
        block = _first_pem_certificate(b64decode(crt)) if isinstance(crt, str) else None
    except InputError as exc:
        raise InputError(f"key Secret {name!r}: {exc.message}") from None
    cert = None
    if need_cert:
        try:
            cert = x509.load_pem_x509_certificate(block or b"")
        except ValueError:
            raise InputError(f"key Secret {name!r}: tls.crt is not a PEM certificate") from None
        if cert.public_key() != key.public_key():
            raise InputError(f"key Secret {name!r}: tls.crt does not match tls.key")
    return KeySecret(
        name, str(meta.get("namespace") or ""), key, cert, meta.get("creationTimestamp")
    )


def _load_pem_key(pem: bytes, *, quick_check: bool = False) -> RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=quick_check
        )
    except (ValueError, TypeError):
        raise InputError("cannot load PEM private key (malformed or encrypted)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError(f"expected RSA private key but found {type(key).__name__}")
    if quick_check:
        check_rsa_key(key)
    return key


_ROUND_TRIP = b"sealkit key check"


def check_rsa_key(key: RSAPrivateKey) -> None:
    """A cheap consistency check of an RSA private key, in place of OpenSSL's full one.

    Why: OpenSSL's ``RSA_check_key`` (what cryptography runs on every load unless told
    ``unsafe_skip_rsa_key_validation``) spends nearly all its time proving that p and q are
    prime: about 1 s of CPU per 4096-bit key on an idle core, 2 s under load, so a controller
    holding 24 keys needed most of a minute of CPU before it could serve ``/v1/cert.pem``. The
    primality proof guards against a deliberately forged key; a key Secret in the controller's
    namespace is trusted (whoever can write it can replace the key outright). What must still
    be caught is a corrupt or mismatched key, and that these checks do in well under 10 ms:

    * the arithmetic that ties the numbers together: ``n == p*q``, ``e*d == 1`` modulo
      ``lcm(p-1, q-1)``, the CRT values ``dmp1``, ``dmq1``, ``iqmp`` derived from ``d``, ``p``
      and ``q`` (a flipped bit anywhere breaks one of them);
    * one RSA-OAEP encrypt/decrypt round trip through OpenSSL itself (the key really opens
      what its public half seals).

    The certificate check (``tls.crt`` matches the key) stays in `parse_key_secret`. Raises
    `InputError` with a message that never contains key material.
    """
    import math

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    bad = InputError("private key is corrupt (its RSA numbers are inconsistent)")
    priv = key.private_numbers()
    pub = priv.public_numbers
    p, q, d, n, e = priv.p, priv.q, priv.d, pub.n, pub.e
    if min(p, q) < 3 or e < 3 or p == q or p * q != n:
        raise bad
    lam = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
    if (e * d) % lam != 1 or priv.dmp1 != d % (p - 1) or priv.dmq1 != d % (q - 1):
        raise bad
    if (priv.iqmp * q) % p != 1:
        raise bad
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    try:
        ok = key.decrypt(key.public_key().encrypt(_ROUND_TRIP, oaep), oaep) == _ROUND_TRIP
    except ValueError:
        ok = False
    if not ok:
        raise bad


def generate_key_and_cert(
    bits: int = DEFAULT_KEY_BITS,
    cn: str = "",
    ttl: _dt.timedelta = DEFAULT_KEY_TTL,
    *,
    now: _dt.datetime | None = None,
) -> tuple[RSAPrivateKey, Certificate]:
    """A fresh RSA key and its self-signed certificate, as the upstream controller makes them.

    Random serial below 2**128, NotBefore = now, NotAfter = now + ttl, CN = ``cn`` for subject
    and issuer, KeyUsage EncipherOnly (critical), BasicConstraints CA=true, SHA256WithRSA.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtensionOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    now = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(secrets.randbelow(2**128) or 1)
        .not_valid_before(now)
        .not_valid_after(now + ttl)
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, _KEY_USAGE_ENCIPHER_ONLY_DER),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def private_key_pem(key: RSAPrivateKey) -> bytes:
    """PKCS#1 ``RSA PRIVATE KEY`` PEM, the controller's ``tls.key`` encoding."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def key_secret_manifest(
    private_key: RSAPrivateKey,
    certificate: Certificate,
    *,
    namespace: str = "kube-system",
    name: str | None = None,
    generate_name: str = DEFAULT_KEY_PREFIX,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The controller's key Secret for this key pair, as a plain dict.

    Upstream uses ``generateName: <prefix>``; pass ``name`` for a fixed name instead (what
    ``kubectl apply`` needs). Extra ``labels`` never override the active-key label.
    """
    from cryptography.hazmat.primitives import serialization

    from sealkit.crypto import b64encode

    metadata: dict[str, Any] = {"name": name} if name else {"generateName": generate_name}
    metadata["namespace"] = namespace
    metadata["labels"] = {**dict(labels or {}), SEALED_SECRETS_KEY_LABEL: "active"}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "data": {
            "tls.crt": b64encode(certificate.public_bytes(serialization.Encoding.PEM)),
            "tls.key": b64encode(private_key_pem(private_key)),
        },
        "type": "kubernetes.io/tls",
    }


def fingerprint(public_key: RSAPublicKey) -> str:
    """OpenSSH-style ``SHA256:<unpadded base64>`` of the public key (upstream's registry key)."""
    import base64

    from cryptography.hazmat.primitives import serialization

    openssh = public_key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    wire = base64.b64decode(openssh.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("=")
