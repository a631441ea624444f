"""Re-seal every SealedSecret of a tree with the newest key: the core of `reencrypt-tree`.

Two sources of new ciphertexts:

- **offline** (`--recovery-private-key` + the current certificate): each value is opened with
  the backup keys (label from the outer metadata, as the controller reads it) and sealed again
  for the certificate. A value already sealed with the certificate's key is left as it is, so a
  second run changes nothing (no Git noise);
- **controller** (`/v1/rotate`): the controller re-seals the whole object with its newest key.
  It cannot say which key opened a value, so every value changes, as with `--re-encrypt`.

Files are edited as text: each old base64 blob is replaced by its new one, and only that, so
format, comments, key order and quoting stay byte for byte (a blob is random and appears once;
when it does not, e.g. a line-wrapped value, the file is refused rather than re-rendered).
The `sealkit.dev/cert-fingerprint` annotation of `seal-tree` twins follows the new key; their
source digest stays valid (the plaintext did not change). The plan is computed for every file
before anything is written, and any failure writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import InputError, UnsealError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from sealkit.cluster import ControllerGateway
    from sealkit.keyops._find import SealedRef
    from sealkit.keyops._report import Keyset

__all__ = ["FilePlan", "TreePlan", "plan_offline", "plan_online"]

_CERT_FP = re.compile(r"(sealkit\.dev/cert-fingerprint[\"']?\s*:\s*[\"']?)SHA256:[A-Za-z0-9+/]+")


@dataclass
class FilePlan:
    """One file: blob replacements and the SealedSecrets that change."""

    path: Path
    replacements: dict[str, str] = field(default_factory=dict)  # old blob text -> new
    changed: list[str] = field(default_factory=list)  # "ns/name" of SealedSecrets that change
    current: int = 0  # SealedSecrets already sealed with the newest key only

    def render(self, text: str, fingerprint: str | None) -> str:
        out = text
        for old, new in self.replacements.items():
            if out.count(old) != 1:
                raise InputError(
                    f"{self.path}: a ciphertext is not on one line; re-encrypt "
                    "this file with `sealkit --re-encrypt`"
                )
            out = out.replace(old, new)
        if fingerprint is not None and self.replacements:
            out = _CERT_FP.sub(lambda m: m.group(1) + fingerprint, out)
        return out


@dataclass
class TreePlan:
    files: list[FilePlan]
    errors: list[str]  # "file:line ns/name: reason", never a value

    @property
    def stale(self) -> list[str]:
        return [r for f in self.files for r in f.changed]


def _values(obj: Mapping[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    enc = spec.get("encryptedData") if isinstance(spec, Mapping) else None
    return {str(k): str(v) for k, v in enc.items()} if isinstance(enc, Mapping) else {}


def _by_file(refs: Sequence[SealedRef]) -> dict[Path, list[SealedRef]]:
    out: dict[Path, list[SealedRef]] = {}
    for ref in refs:
        out.setdefault(ref.path, []).append(ref)
    return out


def _legacy(ref: SealedRef) -> bool:
    spec = ref.obj.get("spec")
    return isinstance(spec, Mapping) and bool(spec.get("data"))


def plan_offline(
    refs: Sequence[SealedRef],
    keyset: Keyset,
    public_key: RSAPublicKey,
    target_fingerprint: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> TreePlan:
    """Plan with the backup keys: values not sealed with the target key are re-sealed."""
    from sealkit.crypto import b64decode, b64encode, seal, unseal_with_index
    from sealkit.keyops._report import _label

    errors: list[str] = []
    files: list[FilePlan] = []
    hint = 0
    n = len(keyset.keys)
    for path, items in _by_file(refs).items():
        plan = FilePlan(path)
        for ref in items:
            where = f"{ref.path}:{ref.line} {ref.ref}"
            if _legacy(ref):
                errors.append(f"{where}: deprecated spec.data is not re-encrypted")
                continue
            label = _label(ref.obj)
            changed = False
            for key, text in _values(ref.obj).items():
                order = [hint, *[i for i in range(n) if i != hint]]
                try:
                    plain, pos = unseal_with_index(
                        b64decode(text), [keyset.keys[i] for i in order], label
                    )
                except (UnsealError, InputError):
                    errors.append(f"{where}: value {key} opens with none of the keys")
                    continue
                hint = order[pos]
                if keyset.fingerprints[hint] != target_fingerprint:
                    plan.replacements[text] = b64encode(seal(plain, public_key, label))
                    changed = True
                del plain
            if changed:
                plan.changed.append(ref.ref)
            else:
                plan.current += 1
            if progress is not None:
                progress(1)
        files.append(plan)
    return TreePlan(files, errors)


def plan_online(
    refs: Sequence[SealedRef],
    gateway: ControllerGateway,
    *,
    call: Callable[[Callable[[], Any]], Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TreePlan:
    """Plan through `/v1/rotate`: every value gets the controller's newest key."""
    call = call or (lambda fn: fn())
    errors: list[str] = []
    files: list[FilePlan] = []
    for path, items in _by_file(refs).items():
        plan = FilePlan(path)
        for ref in items:
            where = f"{ref.path}:{ref.line} {ref.ref}"
            if _legacy(ref):
                errors.append(f"{where}: deprecated spec.data is not re-encrypted")
                continue
            try:
                rotated = call(lambda ref=ref: gateway.rotate(ref.obj))
            except UnsealError:
                errors.append(f"{where}: the controller cannot open it")
                continue
            new = _values(rotated)
            old = _values(ref.obj)
            if set(new) != set(old):
                errors.append(f"{where}: the controller returned other keys")
                continue
            for key, text in old.items():
                plan.replacements[text] = new[key]
            plan.changed.append(ref.ref)
            if progress is not None:
                progress(1)
        files.append(plan)
    return TreePlan(files, errors)
