"""welcome-message, the demo's front service, written for the local stack.

The example's manifests name quay.io/rhdevelopers/welcome-message; no image
registry is reachable here, so the demo's overlay runs this small service,
built from PyPI wheels on the stack's Debian base, with the same contract
(environment, port 8080, `/q/health/ready`):

1. log in to Vault with the pod's own projected ServiceAccount token
   (kubernetes auth, role VAULT_ROLE);
2. read dynamic PostgreSQL credentials (VAULT_DB_CREDS_PATH) and connect to
   DB_HOST with them; read the name-service token from VAULT_KV_PATH;
3. report ready only then. `GET /` greets a name from the name service.

It retries until Vault is configured (the PostSync Job may not have run yet)
and never prints a credential, only the database user's role name.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
STATE: dict[str, str] = {}


def vault(method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{os.environ['VAULT_ADDR']}/v1/{path}", data=data, method=method)
    if token:
        req.add_header("X-Vault-Token", token)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def connect_once() -> None:
    with open(TOKEN_FILE) as fh:
        jwt = fh.read().strip()
    login = vault(
        "POST", "auth/kubernetes/login", body={"role": os.environ["VAULT_ROLE"], "jwt": jwt}
    )
    token = login["auth"]["client_token"]
    creds = vault("GET", os.environ["VAULT_DB_CREDS_PATH"], token)["data"]
    kv = vault("GET", os.environ["VAULT_KV_PATH"], token)["data"]["data"]
    with psycopg.connect(
        host=os.environ["DB_HOST"],
        dbname=os.environ.get("DB_NAME", "postgres"),
        user=creds["username"],
        password=creds["password"],
        connect_timeout=5,
    ) as conn:
        user = conn.execute("select current_user").fetchone()[0]
    STATE["db_user"] = user
    STATE["name_token"] = kv["name-service-token"]
    print(
        f"welcome-message: logged in to Vault as role {os.environ['VAULT_ROLE']}, "
        f"connected to PostgreSQL as a dynamic user ({len(user)}-character name)",
        flush=True,
    )


def connect_loop() -> None:
    while "db_user" not in STATE:
        try:
            connect_once()
        except Exception as exc:  # noqa: BLE001 - retried until Vault is configured
            print(f"welcome-message: not ready yet: {type(exc).__name__}", flush=True)
            time.sleep(3)


def greeting() -> str:
    req = urllib.request.Request(os.environ["NAME_SERVICE_URL"])
    req.add_header("Authorization", f"Bearer {STATE['name_token']}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return f"Welcome, {resp.read().decode().strip()}!\n"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/q/health/ready":
            ok = "db_user" in STATE
            self._send(200 if ok else 503, b"UP\n" if ok else b"DOWN\n")
        elif self.path == "/q/health/live":
            self._send(200, b"UP\n")
        elif self.path == "/" and "db_user" in STATE:
            try:
                self._send(200, greeting().encode())
            except OSError as exc:
                self._send(502, f"name service: {type(exc).__name__}\n".encode())
        else:
            self._send(404 if self.path != "/" else 503, b"")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    threading.Thread(target=connect_loop, daemon=True).start()
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
    sys.exit(0)
