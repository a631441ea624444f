"""Test helpers shipped with sealkit, for our own tests and for users' (like click.testing).

* a fixed RSA-2048 test key and its 100-year self-signed certificate (**test use only**: the
  private key is public, it ships in the wheel);
* `sample_secret`, a small v1 Secret dict;
* `FakeController`, an in-memory stand-in for the controller's ``/v1/cert.pem``,
  ``/v1/verify`` and ``/v1/rotate`` (`sealkit.cluster.ControllerGateway`), for unit tests of
  code that talks to a controller. Example::

      from sealkit.testing import FakeController, test_certificate_pem
      controller = FakeController()
      sealed = sealkit.seal_secret(sample_secret(), controller.public_key())
      controller.verify(sealed)              # raises UnsealError if it would not open
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from sealkit._exceptions import UnsealError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "FakeController",
    "sample_secret",
    "test_certificate_pem",
    "test_private_key",
    "test_private_key_pem",
]


def _data(name: str) -> bytes:
    return resources.files(__package__).joinpath("data", name).read_bytes()


def test_private_key_pem() -> bytes:
    """PKCS#1 PEM of the test key (TEST USE ONLY)."""
    return _data("test-key.pem")


def test_certificate_pem() -> bytes:
    """The test key's self-signed certificate (valid for 100 years from 2026)."""
    return _data("test-cert.pem")


def test_private_key() -> RSAPrivateKey:
    from sealkit.keys import load_private_keys

    return load_private_keys(test_private_key_pem())[0]


# Not test functions, whatever pytest's collector thinks of the ``test_`` prefix.
for _helper in (test_private_key_pem, test_certificate_pem, test_private_key):
    setattr(_helper, "__test__", False)  # noqa: B010 - a function attribute mypy cannot see


def sample_secret(name: str = "db", namespace: str = "prod", **string_data: str) -> dict[str, Any]:
    """A v1 Secret dict with ``stringData`` (default ``{"password": "s3cret"}``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": dict(string_data or {"password": "s3cret"}),
    }


class FakeController:
    """The controller's HTTP API semantics, in memory: newest key last, no templates rendered."""

    def __init__(self, keys: Sequence[tuple[RSAPrivateKey, bytes]] | None = None) -> None:
        """``keys``: (private key, certificate PEM) pairs, oldest first (default: the test key)."""
        self.keys = list(keys or [(test_private_key(), test_certificate_pem())])

    def public_key(self) -> RSAPublicKey:
        return self.keys[-1][0].public_key()

    def cert_pem(self) -> bytes:
        return self.keys[-1][1]

    def verify(self, sealed: Mapping[str, Any]) -> None:
        from sealkit.model import verify

        if not verify(sealed, [k for k, _ in self.keys]):
            name = (sealed.get("metadata") or {}).get("name", "")
            raise UnsealError(f"unable to decrypt sealed secret: {name}")

    def rotate(self, sealed: Mapping[str, Any]) -> dict[str, Any]:
        """`sealkit.model.reencrypt` for the newest key, as ``/v1/rotate`` (plus kind)."""
        from sealkit.model import SEALED_SECRET_API_VERSION, SEALED_SECRET_KIND, reencrypt

        rotated = reencrypt(sealed, [k for k, _ in self.keys], self.public_key())[0]
        return {"kind": SEALED_SECRET_KIND, "apiVersion": SEALED_SECRET_API_VERSION, **rotated}
