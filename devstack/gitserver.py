"""A Git server over smart HTTP on loopback: `git http-backend` behind a tiny CGI host.

Argo CD's repo server clones over HTTP(S) or SSH; a `file://` URL is not a
repository it accepts. So the stack serves its repositories the way a real Git
host does: every request runs `git http-backend` (Git's own CGI program) with
the CGI environment, and its response is passed back. Pushes are allowed
(`http.receivepack`), so the demo and the tests push commits as a user would.

Run as a stack process::

    python -m devstack.gitserver --root DIR --port N

Every bare repository under DIR is served at `http://127.0.0.1:N/<name>.git`.
`init_bare(root, name)` creates one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# CGI meta-variables http-backend reads, from request headers.
_HEADER_VARS = {
    "Content-Type": "CONTENT_TYPE",
    "Content-Encoding": "HTTP_CONTENT_ENCODING",
    "Git-Protocol": "GIT_PROTOCOL",
}
MAX_BODY = 512 * 1024 * 1024  # a push larger than this is refused (bounded memory)


def git() -> str:
    path = shutil.which("git")
    if path is None:
        raise FileNotFoundError("git is not installed (apt-get install git)")
    return path


def init_bare(root: Path, name: str, branch: str = "main") -> Path:
    """Create (or keep) the bare repository `<root>/<name>.git`, accepting pushes."""
    repo = Path(root) / f"{name}.git"
    if not (repo / "HEAD").exists():
        subprocess.run(
            [git(), "init", "--quiet", "--bare", f"--initial-branch={branch}", str(repo)],
            check=True,
        )
    subprocess.run([git(), "-C", str(repo), "config", "http.receivepack", "true"], check=True)
    return repo


def parse_cgi_response(raw: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """Split a CGI response into (status, reason, headers, body)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        value = value.strip()
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            status = int(code)
        elif name:
            headers.append((name, value))
    return status, reason or "OK", headers, body


class GitHandler(BaseHTTPRequestHandler):
    """Runs `git http-backend` per request (GET and POST are all smart HTTP needs)."""

    server_version = "sealkit-devstack-git/1"
    root: Path

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._backend()

    def do_POST(self) -> None:  # noqa: N802
        self._backend()

    def _backend(self) -> None:
        path, _, query = self.path.partition("?")
        if ".." in path.split("/"):
            self.send_error(400, "bad path")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            self.send_error(413, "request body too large")
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
            if body is None:
                self.send_error(413, "request body too large")
                return
        else:
            body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)),
        }
        for header, var in _HEADER_VARS.items():
            if self.headers.get(header):
                env[var] = self.headers[header]
        proc = subprocess.run(
            [git(), "http-backend"], input=body, capture_output=True, env=env, check=False
        )
        if proc.returncode != 0 and not proc.stdout:
            self.send_error(500, "git http-backend failed")
            self.log_message("http-backend: %s", proc.stderr.decode(errors="replace").strip())
            return
        status, reason, headers, out = parse_cgi_response(proc.stdout)
        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()


def serve(root: Path, port: int) -> None:
    handler = type("Handler", (GitHandler,), {"root": Path(root).resolve()})
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        httpd.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.gitserver", description=__doc__)
    parser.add_argument("--root", required=True, help="directory of bare repositories")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        serve(Path(args.root), args.port)
    except OSError as err:
        print(f"gitserver: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
