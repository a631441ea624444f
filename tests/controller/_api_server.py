"""The controller's real API listener in its own process, for fuzz and storm tests.

Run as ``python _api_server.py [rate_limit]``: prints the port, serves until stdin closes.
Its own process, so a test can read its RSS from /proc without the test's own allocations.
"""

from __future__ import annotations

import sys


def main() -> None:
    from controller.http_api import ApiOptions, serve_api
    from controller.keyring import KeyRing, entry_from_secret
    from controller.main import _limit_malloc_arenas
    from sealkit.keys import generate_key_and_cert, key_secret_manifest

    _limit_malloc_arenas()
    key, cert = generate_key_and_cert(bits=2048)
    ring = KeyRing()
    ring.add(entry_from_secret(key_secret_manifest(key, cert, name="sealed-secrets-keyfz")))
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 1e6
    handle = serve_api(
        "127.0.0.1:0",
        keys=ring,
        options=ApiOptions(
            rate_limit=rate, rate_limit_burst=int(min(rate, 1e6)), read_timeout=5, header_timeout=2
        ),
    )
    sys.stdout.write(f"{handle.port}\n")
    sys.stdout.write(ring.latest().certificate_pem.decode())  # type: ignore[union-attr]
    sys.stdout.write("END\n")
    sys.stdout.flush()
    sys.stdin.read()
    handle.shutdown()


if __name__ == "__main__":
    main()
