"""name-generator, the demo's name service, written for the local stack.

Stands in for quay.io/rhdevelopers/name-generator (no registry is reachable):
`GET /` returns a name to callers that present the name-service token as a
bearer token, 401 otherwise; `/q/health/ready` is always ready.
"""

from __future__ import annotations

import hmac
import os
import random
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAMES = ("Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances")
TOKEN = os.environ.get("NAME_SERVICE_TOKEN", "")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/q/health"):
            self._send(200, b"UP\n")
            return
        given = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if not TOKEN or not hmac.compare_digest(given.encode(), TOKEN.encode()):
            self._send(401, b"unauthorized\n")
            return
        self._send(200, random.choice(NAMES).encode() + b"\n")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
