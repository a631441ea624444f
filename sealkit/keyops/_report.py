"""Which key opens each SealedSecret: the pure core of `sealkit keys report`.

Offline, every ``encryptedData`` value (and a deprecated v1 ``spec.data``) is tried against
the given private keys with the label of the SealedSecret's outer metadata, exactly as the
controller reads it; the plaintext is dropped as soon as the key is known and never leaves this
module. The report holds fingerprints, names and data-key names only.

Not a decryption oracle: offline it needs the private keys themselves; online it asks the
controller's `/v1/verify`, which answers only "opens / does not open", never renders templates,
is rate-limited, and needs the caller's right to reach the service proxy. Online, the
fingerprint is unknown (upstream's API does not say which key opened a value); the controller's
`sealkit_key_sealedsecrets{fingerprint}` metric is the in-cluster view of that.

Example::

    refs, _ = find_sealed(["clusters/prod"])
    rows = report_offline(refs, load_keyset(key_file_bytes))
    by_key = summarise(rows)  # {"SHA256:...": 12, ...}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError, UnsealError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from sealkit.cluster import ControllerGateway
    from sealkit.keyops._find import SealedRef

__all__ = [
    "KeyUse",
    "Keyset",
    "load_keyset",
    "opened_by",
    "report_offline",
    "report_online",
    "summarise",
]

UNKNOWN = "?"  # online: opens, but the controller does not say with which key


@dataclass(frozen=True)
class Keyset:
    """Private keys with their fingerprints, in the order given."""

    keys: tuple[RSAPrivateKey, ...]
    fingerprints: tuple[str, ...]


def load_keyset(blobs: Sequence[bytes]) -> Keyset:
    """Keys from `--recovery-private-key` files (PEM, key Secrets, Lists); duplicates dropped."""
    from sealkit.keys import fingerprint, load_private_keys

    keys: list[RSAPrivateKey] = []
    fps: list[str] = []
    for blob in blobs:
        for key in load_private_keys(blob):
            fp = fingerprint(key.public_key())
            if fp not in fps:
                keys.append(key)
                fps.append(fp)
    if not keys:
        raise InputError("no private key given")
    return Keyset(tuple(keys), tuple(fps))


@dataclass(frozen=True)
class KeyUse:
    """One SealedSecret: which keys open its values; `unopened` lists data keys none opens."""

    path: str
    line: int
    namespace: str
    name: str
    fingerprints: tuple[str, ...] = ()  # distinct, in first-use order
    by_value: Mapping[str, str] = field(default_factory=dict)  # data key -> fingerprint
    unopened: tuple[str, ...] = ()
    error: str = ""  # structural problem (not a decryption result)

    @property
    def ok(self) -> bool:
        return not self.unopened and not self.error

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "namespace": self.namespace,
            "name": self.name,
            "fingerprints": list(self.fingerprints),
            "values": dict(self.by_value),
            "unopened": list(self.unopened),
            **({"error": self.error} if self.error else {}),
        }


def _blobs(obj: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return {}, "spec is not a map"
    enc = spec.get("encryptedData")
    blobs = {str(k): str(v) for k, v in enc.items()} if isinstance(enc, Mapping) else {}
    if spec.get("data"):
        blobs["(spec.data)"] = str(spec["data"])
    return blobs, "" if blobs else "no encryptedData"


def _label(obj: Mapping[str, Any]) -> bytes:
    from sealkit.scopes import label_for, scope_of

    meta = obj.get("metadata") or {}
    return label_for(scope_of(meta), meta.get("namespace") or "", meta.get("name") or "")


def opened_by(
    obj: Mapping[str, Any], keyset: Keyset, hint: list[int] | None = None
) -> dict[str, int | None]:
    """data key -> index in `keyset` of the key that opens it (None: no key does).

    `hint` is a one-element list holding the last index that worked; it is tried first, which
    makes a tree sealed mostly with one key cost one RSA operation per value.
    """
    from sealkit.crypto import b64decode, unseal_with_index

    label = _label(obj)
    blobs, _ = _blobs(obj)
    out: dict[str, int | None] = {}
    n = len(keyset.keys)
    for key, text in blobs.items():
        first = hint[0] if hint else 0
        order = [first, *[i for i in range(n) if i != first]]
        found: int | None = None
        try:
            blob = b64decode(text)
            plain, pos = unseal_with_index(blob, [keyset.keys[i] for i in order], label)
            del plain  # the value itself is never kept
            found = order[pos]
        except (UnsealError, InputError):
            found = None
        if found is not None and hint is not None:
            hint[:] = [found]
        out[key] = found
    return out


def _row(ref: SealedRef, **kw: Any) -> KeyUse:
    return KeyUse(str(ref.path), ref.line, ref.namespace, ref.name, **kw)


def _offline_one(ref: SealedRef, keyset: Keyset, hint: list[int]) -> KeyUse:
    _, err = _blobs(ref.obj)
    if err:
        return _row(ref, error=err)
    idx = opened_by(ref.obj, keyset, hint)
    by_value = {k: keyset.fingerprints[i] for k, i in idx.items() if i is not None}
    fps = tuple(dict.fromkeys(by_value.values()))
    unopened = tuple(sorted(k for k, i in idx.items() if i is None))
    return _row(ref, fingerprints=fps, by_value=by_value, unopened=unopened)


def report_offline(
    refs: Sequence[SealedRef],
    keyset: Keyset,
    *,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[KeyUse]:
    """One `KeyUse` per SealedSecret, in input order (RSA releases the GIL: threads scale)."""
    workers = workers or min(8, os.cpu_count() or 1)
    hints = [[0] for _ in range(workers)]

    def one(i: int) -> KeyUse:
        row = _offline_one(refs[i], keyset, hints[i % workers])
        if progress is not None:
            progress(1)
        return row

    if workers == 1 or len(refs) < 8:
        return [one(i) for i in range(len(refs))]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(len(refs))))


def report_online(
    refs: Sequence[SealedRef],
    gateway: ControllerGateway,
    *,
    progress: Callable[[int], None] | None = None,
    call: Callable[[Callable[[], Any]], Any] | None = None,
) -> list[KeyUse]:
    """Ask the controller's `/v1/verify` per SealedSecret (sequential: it is rate-limited)."""
    call = call or (lambda fn: fn())
    rows = []
    for ref in refs:
        _, err = _blobs(ref.obj)
        if err:
            rows.append(_row(ref, error=err))
        else:
            try:
                call(lambda ref=ref: gateway.verify(ref.obj))
                rows.append(_row(ref, fingerprints=(UNKNOWN,)))
            except UnsealError:
                rows.append(_row(ref, unopened=("*",)))
        if progress is not None:
            progress(1)
    return rows


def summarise(rows: Sequence[KeyUse], fingerprints: Sequence[str] = ()) -> dict[str, int]:
    """fingerprint -> number of SealedSecrets it opens (at least one value); given keys with 0
    included so that "opens nothing" shows."""
    counts = {fp: 0 for fp in fingerprints}
    for row in rows:
        for fp in row.fingerprints:
            counts[fp] = counts.get(fp, 0) + 1
    return counts
