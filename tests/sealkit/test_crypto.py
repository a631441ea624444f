"""The hybrid scheme: layout, tolerances and the one opaque error."""

from __future__ import annotations

import struct

import pytest

from sealkit import UnsealError
from sealkit.crypto import b64decode, b64encode, seal, unseal, unseal_with_index
from sealkit.crypto._hazmat import _seal_with


def test_round_trip_and_layout(public_key, private_key) -> None:
    blob = seal(b"s3cret", public_key, b"myns/mysecret")
    (k,) = struct.unpack(">H", blob[:2])
    assert k == 256  # RSA-2048
    assert len(blob) == 2 + 256 + len(b"s3cret") + 16
    assert b64encode(blob).startswith("AQ")
    assert unseal(blob, [private_key], b"myns/mysecret") == b"s3cret"


def test_fresh_session_key_every_time(public_key) -> None:
    assert seal(b"x", public_key, b"") != seal(b"x", public_key, b"")


def test_empty_plaintext(public_key, private_key) -> None:
    assert unseal(seal(b"", public_key, b"a/b"), [private_key], b"a/b") == b""


def test_seam_is_deterministic_except_oaep(public_key, private_key) -> None:
    key = bytes(range(32))
    first = _seal_with(key, b"value", public_key, b"l")
    second = _seal_with(key, b"value", public_key, b"l")
    assert first[2 + 256 :] == second[2 + 256 :]  # same session key -> same GCM part
    assert unseal(first, [private_key], b"l") == b"value"


@pytest.mark.parametrize("size", [16, 24, 32])
def test_accepts_go_aes_key_sizes(public_key, private_key, size: int) -> None:
    blob = _seal_with(b"k" * size, b"value", public_key, b"ns")
    assert unseal(blob, [private_key], b"ns") == b"value"


@pytest.mark.parametrize("size", [0, 8, 20, 31, 33])
def test_rejects_other_session_key_sizes(public_key, private_key, size: int) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from sealkit.crypto._hazmat import _oaep

    wrapped = public_key.encrypt(b"k" * size, _oaep(b"ns"))
    tail = AESGCM(b"k" * 32).encrypt(b"\0" * 12, b"value", None)
    blob = struct.pack(">H", len(wrapped)) + wrapped + tail
    with pytest.raises(UnsealError):
        unseal(blob, [private_key], b"ns")


def test_cluster_wide_label_none_equals_empty(public_key, private_key) -> None:
    assert unseal(seal(b"v", public_key, b""), [private_key], None) == b"v"  # type: ignore[arg-type]
    assert unseal(seal(b"v", public_key, None), [private_key], b"") == b"v"  # type: ignore[arg-type]


def test_index_of_the_key_that_opened(public_key, private_key, other_private_key) -> None:
    blob = seal(b"v", public_key, b"l")
    assert unseal_with_index(blob, [other_private_key, private_key], b"l") == (b"v", 1)
    assert unseal_with_index(blob, [private_key, other_private_key], b"l") == (b"v", 0)


def test_errors_are_identical_whatever_failed(public_key, private_key, other_private_key) -> None:
    blob = seal(b"v", public_key, b"l")
    tag_broken = blob[:-1] + bytes([blob[-1] ^ 1])
    messages = set()
    for bad_blob, keys, label in [
        (blob, [other_private_key], b"l"),  # OAEP failure, wrong key
        (blob, [private_key], b"other"),  # OAEP failure, wrong label
        (tag_broken, [private_key], b"l"),  # GCM tag failure
        (blob[:1], [private_key], b"l"),  # too short
        (blob, [], b"l"),  # no keys
    ]:
        with pytest.raises(UnsealError) as info:
            unseal(bad_blob, keys, label)
        messages.add(str(info.value))
    assert messages == {"no key could decrypt secret"}


def test_b64_tolerates_line_breaks_only() -> None:
    data = bytes(range(200))
    text = b64encode(data)
    wrapped = "\r\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n"
    assert b64decode(wrapped) == data
    from sealkit import InputError

    for bad in (text.replace("A", "-", 1), text + " ", text.rstrip("=")[:-1] + "_"):
        with pytest.raises(InputError):
            b64decode(bad)


def test_b64_is_standard_padded() -> None:
    assert b64encode(b"\xfb\xff") == "+/8="
